package httpapi

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
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
	sid, status, channel := twilioReport(r.PostForm)
	if id == "" || sid == "" {
		s.writeError(w, r, tessera.Errorf(tessera.EINVALID, "The callback names no message"))
		return
	}
	if status == "" {
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
			s.ObserveDeliveryReport(string(channel), string(status))
		}
		if status != tessera.DeliveryDelivered {
			// An error here answers 5xx, so Twilio calls again; the report
			// is recorded again and the fallback, set once, is retried.
			next, err := s.Engine.FallBackAfterReport(r.Context(), id)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			if next != nil {
				s.Log.Info("twilio status callback: falling back to the next channel", "message", id, "status", status, "next", next.ID, "next_channel", next.Channel)
			}
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

// twilioReport reads a status callback: the SID of the message or call,
// its final state ("" for one that is not final yet) and its channel. A
// message (SMS or WhatsApp) reports MessageStatus; read (WhatsApp) counts
// as delivered. A call reports CallStatus: completed means it was
// answered and the code read out; busy and no-answer, that it did not
// reach anyone; failed and canceled, that it never rang.
func twilioReport(form url.Values) (sid string, status tessera.DeliveryStatus, channel tessera.Channel) {
	if sid = form.Get("CallSid"); sid != "" && form.Get("MessageSid") == "" {
		switch form.Get("CallStatus") {
		case "completed":
			status = tessera.DeliveryDelivered
		case "busy", "no-answer":
			status = tessera.DeliveryUndelivered
		case "failed", "canceled":
			status = tessera.DeliveryFailed
		}
		return sid, status, tessera.ChannelCall
	}
	sid, channel = form.Get("MessageSid"), tessera.ChannelSMS
	if strings.HasPrefix(form.Get("To"), "whatsapp:") || strings.HasPrefix(form.Get("From"), "whatsapp:") {
		channel = tessera.ChannelWhatsApp
	}
	switch st := tessera.DeliveryStatus(form.Get("MessageStatus")); st {
	case tessera.DeliveryDelivered, tessera.DeliveryUndelivered, tessera.DeliveryFailed:
		status = st
	case "read":
		status = tessera.DeliveryDelivered
	}
	return sid, status, channel
}
