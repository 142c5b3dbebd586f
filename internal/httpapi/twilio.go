package httpapi

import (
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/deliver"
)

// maxCallbackBytes bounds a provider callback's body; Twilio's are a few
// hundred bytes.
const maxCallbackBytes = 16 << 10

// handleTwilioStatus handles POST /webhooks/twilio/status: Twilio's status
// callback for a message it accepted, asked for with
// ?message=<outbox id>. Only a request signed by Twilio (X-Twilio-Signature
// over TESSERA_PUBLIC_URL + path + query and the sorted POST parameters,
// under the auth token) is believed; anything else is 403 and changes
// nothing. The final states (delivered, undelivered, failed) are recorded
// with Twilio's error code, and with operator events on, its
// message.delivered or message.failed event in the same transaction; the
// others (queued, sending, sent…) are acknowledged and ignored.
func (s *Server) handleTwilioStatus(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.Store.(tessera.DeliveryStore); s.TwilioAuthToken == "" || s.PublicURL == "" || !ok {
		s.writeError(w, r, tessera.Errorf(tessera.ENOTFOUND, "Not found"))
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		s.writeError(w, r, tessera.Errorf(tessera.EMEDIATYPE, "Content-Type must be application/x-www-form-urlencoded"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxCallbackBytes)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.writeError(w, r, tessera.Errorf(tessera.ETOOLARGE, "Request body is larger than %d bytes", maxCallbackBytes))
			return
		}
		s.writeError(w, r, tessera.Errorf(tessera.EMALFORMED, "The body is not a valid form"))
		return
	}
	fullURL := strings.TrimRight(s.PublicURL, "/") + r.URL.RequestURI()
	if !deliver.VerifyTwilioSignature(s.TwilioAuthToken, fullURL, r.PostForm, r.Header.Get("X-Twilio-Signature")) {
		s.Log.Warn("twilio status callback: bad signature", "url", fullURL)
		s.writeError(w, r, tessera.Errorf(tessera.EFORBIDDEN, "Invalid X-Twilio-Signature"))
		return
	}
	id := r.URL.Query().Get("message")
	sid := r.PostForm.Get("MessageSid")
	if id == "" || sid == "" {
		s.writeError(w, r, tessera.Errorf(tessera.EINVALID, "The callback names no message"))
		return
	}
	status := tessera.DeliveryStatus(r.PostForm.Get("MessageStatus"))
	switch status {
	case tessera.DeliveryDelivered, tessera.DeliveryUndelivered, tessera.DeliveryFailed:
	default:
		w.WriteHeader(http.StatusNoContent) // not final: nothing to record
		return
	}
	code := r.PostForm.Get("ErrorCode")
	if len(code) > 16 || strings.Trim(code, "0123456789") != "" {
		code = "" // Twilio's codes are numbers; anything else is not kept
	}
	err := s.Engine.RecordDelivery(r.Context(), id, sid, status, code, s.now())
	switch {
	case err == nil:
		if s.ObserveDeliveryReport != nil {
			s.ObserveDeliveryReport(string(tessera.ChannelSMS), string(status))
		}
	case tessera.ErrorCode(err) == tessera.ENOTFOUND:
		// Gone (cleaned up), another SID, or delivered already: a late or
		// repeated report. Acknowledged, so Twilio does not retry it.
		s.Log.Info("twilio status callback: not recorded", "message", id, "sid", sid, "status", status)
	default:
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
