package deliver

import (
	"strings"
	"testing"

	"github.com/tessera-id/tessera"
)

func TestVoiceTwiML(t *testing.T) {
	for _, tc := range []struct {
		name, lang string
		content    tessera.MessageContent
		want       string
	}{
		{"code spelled out, twice", "en-US", tessera.MessageContent{Body: "Your code is 482913", Code: "482913"},
			`<Say language="en-US">Your code is 4, 8, 2, 9, 1, 3</Say><Pause length="1"/><Say language="en-US">Your code is 4, 8, 2, 9, 1, 3</Say>`},
		{"escaped", "de-DE", tessera.MessageContent{Body: `<b>"A&B"</b> AB12`, Code: "AB12"},
			`<Say language="de-DE">&lt;b&gt;&quot;A&amp;B&quot;&lt;/b&gt; A, B, 1, 2</Say>`},
		{"no code: read as written", "", tessera.MessageContent{Body: "Your password was changed"},
			`<Say language="en-US">Your password was changed</Say>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VoiceTwiML(tc.lang, tc.content)
			if err != nil || !strings.HasPrefix(got, `<?xml version="1.0" encoding="UTF-8"?><Response>`) || !strings.Contains(got, tc.want) {
				t.Fatalf("got %s (%v), want it to contain %s", got, err, tc.want)
			}
		})
	}
	if _, err := VoiceTwiML("en-US", tessera.MessageContent{Body: strings.Repeat("x", 3000)}); err == nil {
		t.Fatal("a message too long for a call was accepted")
	}
}

func TestTwilioWhatsAppSettings(t *testing.T) {
	cfg := TwilioConfig{AccountSID: twTestSID, AuthToken: twTestToken, From: twTestFrom, WhatsAppFrom: "whatsapp:+14155550111", VoiceLanguage: `en"><Play>`}
	if _, err := NewTwilioSender(cfg); err == nil || !strings.Contains(err.Error(), "voice language") {
		t.Fatalf("a bad voice language: %v", err)
	}
	cfg.VoiceLanguage, cfg.WhatsAppContentSID = "", "HX0123"
	s, err := NewTwilioSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	form := whatsAppForm(&tessera.Outgoing{To: "+14155552671", Content: tessera.MessageContent{Body: "Code 123456", Code: "123456"}}, s.whatsAppFrom, s.whatsAppContentSID)
	if form.Get("From") != "whatsapp:+14155550111" || form.Get("To") != "whatsapp:+14155552671" || form.Get("ContentSid") != "HX0123" ||
		form.Get("ContentVariables") != `{"1":"123456"}` || form.Has("Body") {
		t.Fatalf("form %v", form)
	}
}
