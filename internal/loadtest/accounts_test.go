package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestRefreshFollowsTheChain runs -mode refresh against a server that
// accepts each refresh token once, as Tessera does: every rotation must
// send the token the previous one returned.
func TestRefreshFollowsTheChain(t *testing.T) {
	var mu sync.Mutex
	live := map[string]bool{}
	next := 0
	issue := func(w http.ResponseWriter) {
		next++
		tok := fmt.Sprint("rt-", next)
		live[tok] = true
		json.NewEncoder(w).Encode(map[string]string{"idToken": "x", "refreshToken": tok})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /auth/login", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Email, Password string }
		json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		defer mu.Unlock()
		if req.Email != "a@example.com" || req.Password != "pw" {
			http.Error(w, `{"status":401}`, http.StatusUnauthorized)
			return
		}
		issue(w)
	})
	mux.HandleFunc("POST /auth/login/refresh", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			RefreshToken string `json:"refreshToken"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		defer mu.Unlock()
		if !live[req.RefreshToken] {
			http.Error(w, `{"status":401,"error":"reused"}`, http.StatusUnauthorized)
			return
		}
		delete(live, req.RefreshToken)
		issue(w)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res, err := RunAccounts(context.Background(), AccountConfig{URL: srv.URL, Mode: "refresh", Email: "a@example.com", Password: "pw",
		Concurrency: 3, Duration: 300 * time.Millisecond, Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.Errors != 0 {
		t.Fatalf("%d rotations, %d errors (%v): want rotations and no reuse", res.Ops, res.Errors, res.ErrorSamples)
	}

	if _, err := RunAccounts(context.Background(), AccountConfig{URL: srv.URL, Mode: "refresh", Email: "a@example.com", Password: "wrong",
		Concurrency: 1, Duration: time.Second}); err == nil {
		t.Fatal("a refresh run whose login fails reported no error")
	}
}
