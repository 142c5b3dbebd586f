package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/verify"
)

// verificationJSON is a verification as the verification API shows it.
type verificationJSON struct {
	VerificationID string          `json:"verificationId"`
	Consumer       string          `json:"consumer"`
	ExpiredOn      int64           `json:"expiredOn"` // Unix seconds
	Attempts       int             `json:"attempts"`
	Sends          int             `json:"sends,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	Delivery       *deliveryJSON   `json:"delivery,omitempty"`
}

// deliveryJSON is the outbox state of a verification's message.
type deliveryJSON struct {
	Channel   tessera.Channel       `json:"channel"`
	Status    tessera.MessageStatus `json:"status"`
	Attempts  int                   `json:"attempts"`
	LastError string                `json:"lastError,omitempty"`
	SentAt    *time.Time            `json:"sentAt,omitempty"`
	// What the provider reported afterwards (Twilio status callbacks).
	DeliveryStatus tessera.DeliveryStatus `json:"deliveryStatus,omitempty"`
	ProviderError  string                 `json:"providerError,omitempty"`
	DeliveredAt    *time.Time             `json:"deliveredAt,omitempty"`
	// History lists every message of the verification, oldest first, when
	// there was more than one: each channel a fallback tried, and resends.
	History []*deliveryJSON `json:"history,omitempty"`
}

func deliveryView(msg *tessera.Message) *deliveryJSON {
	d := &deliveryJSON{Channel: msg.Channel, Status: msg.Status, Attempts: msg.Attempts, LastError: msg.LastError,
		DeliveryStatus: msg.DeliveryStatus, ProviderError: msg.ProviderError}
	if !msg.SentAt.IsZero() {
		d.SentAt = &msg.SentAt
	}
	if !msg.DeliveredAt.IsZero() {
		d.DeliveredAt = &msg.DeliveredAt
	}
	return d
}

func verificationView(v *tessera.Verification) *verificationJSON {
	return &verificationJSON{
		VerificationID: v.ID,
		Consumer:       v.Consumer,
		ExpiredOn:      v.ExpiresAt.Unix(),
		Attempts:       v.Attempts,
		Sends:          v.Sends,
		Payload:        v.Payload,
	}
}

// method reads the {method} path value; unknown methods are 404, as the
// blueprint says.
func method(r *http.Request) (tessera.Method, error) {
	switch m := tessera.Method(r.PathValue("method")); m {
	case tessera.MethodEmail, tessera.MethodPhone, tessera.MethodGoogleAuth, tessera.MethodWhatsApp, tessera.MethodCall:
		return m, nil
	}
	return "", tessera.Errorf(tessera.ENOTFOUND, "Method not supported")
}

// handleInitiate handles POST /methods/{method}/actions/initiate.
func (s *Server) handleInitiate(w http.ResponseWriter, r *http.Request) {
	m, err := method(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req verify.InitiateRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	out, err := s.Engine.Initiate(r.Context(), clientFrom(r.Context()).ID, m, &req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	type initiateJSON struct {
		Status int `json:"status"`
		*verificationJSON
		TOTPURI string `json:"totpUri,omitempty"`
	}
	writeJSON(w, http.StatusOK, initiateJSON{Status: http.StatusOK, verificationJSON: verificationView(out.Verification), TOTPURI: out.TOTPURI})
}

// handleValidate handles POST /methods/{method}/verifiers/{id}/actions/validate.
func (s *Server) handleValidate(w http.ResponseWriter, r *http.Request) {
	m, err := method(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req struct {
		Code         string `json:"code"`
		RemoveSecret bool   `json:"removeSecret"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	owner := clientFrom(r.Context()).ID
	v, err := s.Engine.Validate(r.Context(), owner, m, r.PathValue("id"), req.Code, req.RemoveSecret)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, dataJSON{Status: http.StatusOK, Data: verificationView(v)})
}

type dataJSON struct {
	Status int `json:"status"`
	Data   any `json:"data"`
}

// handleGetVerification handles GET /methods/{method}/verifiers/{id}. It
// never shows the code; it does show how delivery of the message went.
func (s *Server) handleGetVerification(w http.ResponseWriter, r *http.Request) {
	m, err := method(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	owner := clientFrom(r.Context()).ID
	v, err := s.Engine.Get(r.Context(), owner, m, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	view := verificationView(v)
	if msg, err := s.Engine.Delivery(r.Context(), owner, v.ID); err == nil {
		view.Delivery = deliveryView(msg)
		if all, err := s.Engine.Deliveries(r.Context(), owner, v.ID); err != nil {
			s.writeError(w, r, err)
			return
		} else if len(all) > 1 {
			for _, m := range all {
				view.Delivery.History = append(view.Delivery.History, deliveryView(m))
			}
		}
	} else if tessera.ErrorCode(err) != tessera.ENOTFOUND {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, dataJSON{Status: http.StatusOK, Data: view})
}

// handleDeleteVerification handles DELETE /methods/{method}/verifiers/{id}:
// the code can no longer be used.
func (s *Server) handleDeleteVerification(w http.ResponseWriter, r *http.Request) {
	m, err := method(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.Engine.Invalidate(r.Context(), clientFrom(r.Context()).ID, m, r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"status": http.StatusOK})
}

// handleResend handles POST /methods/{method}/verifiers/{id}/actions/resend:
// the same code goes out again, after a cooldown and up to a cap.
func (s *Server) handleResend(w http.ResponseWriter, r *http.Request) {
	m, err := method(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := s.Engine.Resend(r.Context(), clientFrom(r.Context()).ID, m, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, dataJSON{Status: http.StatusOK, Data: verificationView(v)})
}
