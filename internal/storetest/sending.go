package storetest

import (
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
)

func testTemplates(t *testing.T, s tessera.Store) {
	_, err := s.Template(ctx(), "login", "en")
	wantCode(t, err, tessera.ENOTFOUND)
	en := &tessera.MessageTemplate{ID: "login", Locale: "en", Subject: "Your code", Body: "Code: {{{CODE}}}", CreatedAt: t0}
	must(t, s.PutTemplate(ctx(), en))
	must(t, s.PutTemplate(ctx(), &tessera.MessageTemplate{ID: "login", Locale: "de", Body: "Code: {{{CODE}}} (de)", CreatedAt: t0}))
	must(t, s.PutTemplate(ctx(), &tessera.MessageTemplate{ID: "alpha", Locale: "en", Body: "{{{CODE}}}", CreatedAt: t0}))
	got, err := s.Template(ctx(), "login", "en")
	must(t, err)
	if !reflect.DeepEqual(got, en) {
		t.Fatalf("got template %+v, want %+v", got, en)
	}
	// The same id and locale replaces the template.
	must(t, s.PutTemplate(ctx(), &tessera.MessageTemplate{ID: "login", Locale: "en", Subject: "New", Body: "New {{{CODE}}}", CreatedAt: t0.Add(time.Second)}))
	got, err = s.Template(ctx(), "login", "en")
	must(t, err)
	if got.Subject != "New" || got.Body != "New {{{CODE}}}" || !got.CreatedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("replaced template reads %+v", got)
	}
	_, err = s.Template(ctx(), "login", "fr")
	wantCode(t, err, tessera.ENOTFOUND)
	all, err := s.Templates(ctx())
	must(t, err)
	var names []string
	for _, t := range all {
		names = append(names, t.ID+"/"+t.Locale)
	}
	if !reflect.DeepEqual(names, []string{"alpha/en", "login/de", "login/en"}) {
		t.Fatalf("templates listed as %v", names)
	}
	must(t, s.DeleteTemplate(ctx(), "login", "de"))
	wantCode(t, s.DeleteTemplate(ctx(), "login", "de"), tessera.ENOTFOUND)
	_, err = s.Template(ctx(), "login", "de")
	wantCode(t, err, tessera.ENOTFOUND)
}

func testSendingPolicies(t *testing.T, s tessera.Store) {
	must(t, s.CreateClient(ctx(), &tessera.Client{ID: "id1", Name: "shop", TokenHash: []byte("h1"), CreatedAt: t0}))
	must(t, s.CreateClient(ctx(), &tessera.Client{ID: "id2", Name: "blog", TokenHash: []byte("h2"), CreatedAt: t0}))
	_, err := s.SendingPolicy(ctx(), "id1")
	wantCode(t, err, tessera.ENOTFOUND)
	wantCode(t, s.SetSendingPolicy(ctx(), &tessera.SendingPolicy{ClientID: "nobody", UpdatedAt: t0}), tessera.ENOTFOUND)
	_, err = s.SendingPolicy(ctx(), "nobody")
	wantCode(t, err, tessera.ENOTFOUND)

	p := &tessera.SendingPolicy{ClientID: "id1", FromAllow: []string{"example.com", "codes@example.org"}, TemplatesOnly: true, UpdatedAt: t0}
	must(t, s.SetSendingPolicy(ctx(), p))
	got, err := s.SendingPolicy(ctx(), "id1")
	must(t, err)
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("got policy %+v, want %+v", got, p)
	}
	// Another client's policy is its own.
	_, err = s.SendingPolicy(ctx(), "id2")
	wantCode(t, err, tessera.ENOTFOUND)

	// Setting again replaces it; an empty allow-list reads back as none.
	must(t, s.SetSendingPolicy(ctx(), &tessera.SendingPolicy{ClientID: "id1", UpdatedAt: t0.Add(time.Second)}))
	got, err = s.SendingPolicy(ctx(), "id1")
	must(t, err)
	if len(got.FromAllow) != 0 || got.TemplatesOnly || !got.UpdatedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("replaced policy reads %+v", got)
	}

	// Parallel writers of one client's policy leave one whole policy.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			must(t, s.SetSendingPolicy(ctx(), &tessera.SendingPolicy{ClientID: "id1", FromAllow: []string{"example.com"}, TemplatesOnly: i%2 == 0, UpdatedAt: t0}))
		}(i)
	}
	wg.Wait()
	if got, err = s.SendingPolicy(ctx(), "id1"); err != nil || !reflect.DeepEqual(got.FromAllow, []string{"example.com"}) {
		t.Fatalf("after parallel writes: %+v %v", got, err)
	}

	must(t, s.DeleteSendingPolicy(ctx(), "id1"))
	wantCode(t, s.DeleteSendingPolicy(ctx(), "id1"), tessera.ENOTFOUND)
	_, err = s.SendingPolicy(ctx(), "id1")
	wantCode(t, err, tessera.ENOTFOUND)
}
