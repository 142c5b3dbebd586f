package deliver

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/tessera-id/tessera"
)

var _ tessera.Sender = (*TwilioSender)(nil)

// DefaultTwilioBaseURL is where Twilio's REST API lives.
const DefaultTwilioBaseURL = "https://api.twilio.com"

// TwilioConfig configures a TwilioSender.
type TwilioConfig struct {
	AccountSID, AuthToken string
	// From is the sender: an E.164 number of the account. Set either it or
	// MessagingServiceSID, not both.
	From string
	// MessagingServiceSID ("MG…") lets a Messaging Service pick the sender.
	MessagingServiceSID string
	// BaseURL defaults to DefaultTwilioBaseURL; tests point it elsewhere.
	BaseURL string
	// HTTPClient defaults to a client with a 30-second timeout.
	HTTPClient *http.Client
	// StatusCallback, when set, is the URL Twilio reports delivery to
	// (TESSERA_PUBLIC_URL + /webhooks/twilio/status); each message adds
	// ?message=<outbox id> to it.
	StatusCallback string
	// Deliveries, when set, records each accepted message's SID.
	Deliveries tessera.DeliveryStore

	// WhatsAppFrom is the WhatsApp sender, an E.164 number registered as a
	// WhatsApp sender of the account (sent as "whatsapp:+1…"); without it
	// WhatsApp messages fail permanently (and fall back, if they may).
	WhatsAppFrom string
	// WhatsAppContentSID ("HX…"), when set, sends codes as that approved
	// content template, its variable {{1}} the code, instead of as free
	// text: WhatsApp delivers free text only within 24 hours of the
	// person's last message to the sender.
	WhatsAppContentSID string
	// VoiceLanguage is the language of the voice that reads codes out in
	// calls (DefaultVoiceLanguage when empty). Calls come from From.
	VoiceLanguage string
}

// DefaultVoiceLanguage is the language of calls when none is configured.
const DefaultVoiceLanguage = "en-US"

// TwilioStatusPath is where Twilio's status callbacks arrive.
const TwilioStatusPath = "/webhooks/twilio/status"

// TwilioStatusCallback is the StatusCallback URL for outbox message id
// under callback (a TwilioConfig.StatusCallback).
func TwilioStatusCallback(callback, id string) string {
	return callback + "?" + url.Values{"message": {id}}.Encode()
}

// TwilioSender sends SMS through Twilio's Messages API.
//
// Twilio documents no idempotency key for creating a message, so none is
// sent: delivery is at least once, and a request that times out after
// Twilio accepted it is retried and may reach the phone twice.
type TwilioSender struct {
	endpoint, callsURL  string
	accountSID, token   string
	from, messagingSSID string
	client              *http.Client
	callback            string
	deliveries          tessera.DeliveryStore
	whatsAppFrom        string
	whatsAppContentSID  string
	voiceLanguage       string
}

// NewTwilioSender checks cfg and returns a sender.
func NewTwilioSender(cfg TwilioConfig) (*TwilioSender, error) {
	if !strings.HasPrefix(cfg.AccountSID, "AC") || len(cfg.AccountSID) < 3 {
		return nil, errors.New("twilio: the account SID must start with AC")
	}
	if cfg.AuthToken == "" {
		return nil, errors.New("twilio: the auth token is required")
	}
	switch {
	case cfg.From == "" && cfg.MessagingServiceSID == "":
		return nil, errors.New("twilio: set a From number or a messaging service SID")
	case cfg.From != "" && cfg.MessagingServiceSID != "":
		return nil, errors.New("twilio: set either a From number or a messaging service SID, not both")
	case cfg.MessagingServiceSID != "" && !strings.HasPrefix(cfg.MessagingServiceSID, "MG"):
		return nil, errors.New("twilio: the messaging service SID must start with MG")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultTwilioBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("twilio: base URL %q must be an http(s) URL", base)
	}
	if cfg.StatusCallback != "" {
		cb, err := url.Parse(cfg.StatusCallback)
		if err != nil || (cb.Scheme != "https" && cb.Scheme != "http") || cb.Host == "" || cb.RawQuery != "" || cb.Fragment != "" {
			return nil, fmt.Errorf("twilio: status callback %q must be an http(s) URL without query", cfg.StatusCallback)
		}
	}
	if err := checkWhatsAppVoice(&cfg); err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	account := strings.TrimRight(base, "/") + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID)
	return &TwilioSender{
		endpoint: account + "/Messages.json", callsURL: account + "/Calls.json",
		whatsAppFrom: cfg.WhatsAppFrom, whatsAppContentSID: cfg.WhatsAppContentSID, voiceLanguage: cfg.VoiceLanguage,
		accountSID: cfg.AccountSID, token: cfg.AuthToken,
		from: cfg.From, messagingSSID: cfg.MessagingServiceSID,
		client: client, callback: cfg.StatusCallback, deliveries: cfg.Deliveries,
	}, nil
}

// twilioError is the JSON body of Twilio's error answers.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// Send creates the message at Twilio. Rejections that retrying cannot fix
// (an invalid number, bad credentials, an unverified number) are
// permanent; rate limits, server errors and network failures are not.
func (s *TwilioSender) Send(ctx context.Context, m *tessera.Outgoing) error {
	endpoint := s.endpoint
	var form url.Values
	switch m.Channel {
	case tessera.ChannelSMS:
		form = url.Values{"To": {m.To}, "Body": {m.Content.Body}}
		if s.messagingSSID != "" {
			form.Set("MessagingServiceSid", s.messagingSSID)
		} else {
			form.Set("From", s.from)
		}
	case tessera.ChannelWhatsApp:
		if s.whatsAppFrom == "" {
			return Permanent(errors.New("twilio: no WhatsApp sender configured (TESSERA_TWILIO_WHATSAPP_FROM)"))
		}
		form = whatsAppForm(m, s.whatsAppFrom, s.whatsAppContentSID)
	case tessera.ChannelCall:
		if s.from == "" {
			return Permanent(errors.New("twilio: calls need a From number (TESSERA_TWILIO_FROM); a messaging service cannot call"))
		}
		twiml, err := VoiceTwiML(s.voiceLanguage, m.Content)
		if err != nil {
			return Permanent(fmt.Errorf("twilio: %w", err))
		}
		endpoint = s.callsURL
		form = url.Values{"To": {m.To}, "From": {s.from}, "Twiml": {twiml}}
	default:
		return Permanent(fmt.Errorf("twilio: cannot send a %q message", m.Channel))
	}
	if s.callback != "" {
		form.Set("StatusCallback", TwilioStatusCallback(s.callback, m.ID))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Permanent(fmt.Errorf("twilio: %w", err))
	}
	req.SetBasicAuth(s.accountSID, s.token)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("twilio: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil && resp.StatusCode/100 != 2 {
		return fmt.Errorf("twilio: HTTP %d, reading the answer: %w", resp.StatusCode, err)
	}

	if resp.StatusCode/100 == 2 {
		var ok struct {
			SID string `json:"sid"`
		}
		if json.Unmarshal(raw, &ok) != nil || ok.SID == "" {
			// Something answered success without creating a message or
			// call (a proxy, a wrong base URL): try again rather than lose
			// it.
			return fmt.Errorf("twilio: HTTP %d without a sid", resp.StatusCode)
		}
		if s.deliveries != nil {
			// Best effort: Twilio has the message, and a status callback
			// records the SID anyway if this does not.
			_ = s.deliveries.SetProviderID(context.WithoutCancel(ctx), m.ID, ok.SID)
		}
		return nil
	}

	var te twilioError
	var sendErr error
	if json.Unmarshal(raw, &te) == nil && te.Code != 0 {
		msg := te.Message
		if b := m.Content.Body; b != "" {
			msg = strings.ReplaceAll(msg, b, "[body]") // the code never goes to logs or the outbox row
		}
		if c := m.Content.Code; c != "" {
			msg = strings.ReplaceAll(msg, c, "[code]")
		}
		if len(msg) > 300 {
			msg = strings.ToValidUTF8(msg[:300], "")
		}
		sendErr = fmt.Errorf("twilio: %d: %s (HTTP %d)", te.Code, msg, resp.StatusCode)
	} else {
		sendErr = fmt.Errorf("twilio: HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	if httpStatusPermanent(resp.StatusCode) {
		return Permanent(sendErr)
	}
	return sendErr
}

// httpStatusPermanent reports whether an HTTP status says the request itself
// is wrong, so sending it again cannot succeed: 4xx except 408 (timeout)
// and 429 (rate limited).
func httpStatusPermanent(code int) bool {
	return code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
}

// TwilioSignature computes X-Twilio-Signature as Twilio documents it: the
// full URL Twilio requested, then each POST parameter's name and value
// appended, sorted by name (and by value for a repeated name), signed with
// HMAC-SHA1 under the auth token and encoded in base64.
func TwilioSignature(authToken, fullURL string, params url.Values) string {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range names {
		vs := append([]string(nil), params[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// VerifyTwilioSignature reports whether signature is Twilio's signature of
// fullURL and params under authToken, comparing in constant time. An empty
// token or signature never verifies.
func VerifyTwilioSignature(authToken, fullURL string, params url.Values, signature string) bool {
	if authToken == "" || signature == "" {
		return false
	}
	want := TwilioSignature(authToken, fullURL, params)
	return hmac.Equal([]byte(want), []byte(signature))
}
