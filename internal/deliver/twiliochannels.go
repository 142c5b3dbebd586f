package deliver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/tessera-id/tessera"
)

// voiceLanguagePattern is what Twilio's <Say language> takes: a language
// tag such as en-US, de-DE or cmn-CN.
var voiceLanguagePattern = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)

// CheckVoiceLanguage checks TESSERA_VOICE_LANGUAGE.
func CheckVoiceLanguage(lang string) error {
	if !voiceLanguagePattern.MatchString(lang) {
		return fmt.Errorf("voice language %q must be a language tag such as en-US or de-DE", lang)
	}
	return nil
}

// checkWhatsAppVoice checks and normalizes the WhatsApp and voice settings
// of cfg.
func checkWhatsAppVoice(cfg *TwilioConfig) error {
	cfg.WhatsAppFrom = strings.TrimPrefix(strings.TrimSpace(cfg.WhatsAppFrom), "whatsapp:")
	if f := cfg.WhatsAppFrom; f != "" && (!strings.HasPrefix(f, "+") || len(f) < 8 || strings.Trim(f[1:], "0123456789") != "") {
		return fmt.Errorf("twilio: the WhatsApp sender %q must be an E.164 number such as +14155550100", f)
	}
	if c := cfg.WhatsAppContentSID; c != "" && (!strings.HasPrefix(c, "HX") || cfg.WhatsAppFrom == "") {
		return errors.New("twilio: the WhatsApp content SID must start with HX and needs a WhatsApp sender")
	}
	if cfg.VoiceLanguage == "" {
		cfg.VoiceLanguage = DefaultVoiceLanguage
	}
	if err := CheckVoiceLanguage(cfg.VoiceLanguage); err != nil {
		return fmt.Errorf("twilio: %w", err)
	}
	return nil
}

// whatsAppForm is the Messages API request of a WhatsApp message: the
// addresses with Twilio's "whatsapp:" prefix and, for a code when a
// content template is configured, the template with the code as {{1}}.
func whatsAppForm(m *tessera.Outgoing, from, contentSID string) url.Values {
	form := url.Values{"To": {"whatsapp:" + m.To}, "From": {"whatsapp:" + from}}
	if contentSID != "" && m.Content.Code != "" {
		vars, _ := json.Marshal(map[string]string{"1": m.Content.Code})
		form.Set("ContentSid", contentSID)
		form.Set("ContentVariables", string(vars))
		return form
	}
	form.Set("Body", m.Content.Body)
	return form
}

// maxTwiML is the longest Twiml parameter Twilio takes.
const maxTwiML = 4000

// VoiceTwiML is the TwiML of a call that reads the message out twice in
// language, with the code spelled character by character (a text-to-speech
// voice reads "482913" as a number, which nobody can type).
func VoiceTwiML(language string, c tessera.MessageContent) (string, error) {
	if language == "" {
		language = DefaultVoiceLanguage
	}
	text := c.Body
	if c.Code != "" && strings.Contains(text, c.Code) {
		text = strings.ReplaceAll(text, c.Code, SpellOut(c.Code))
	}
	say := `<Say language="` + xmlEscape(language) + `">` + xmlEscape(text) + `</Say>`
	twiml := `<?xml version="1.0" encoding="UTF-8"?><Response>` + say + `<Pause length="1"/>` + say + `</Response>`
	if len(twiml) > maxTwiML {
		return "", fmt.Errorf("the message is too long to read out in a call (%d bytes of TwiML, at most %d)", len(twiml), maxTwiML)
	}
	return twiml, nil
}

// SpellOut separates the characters of a code so a voice reads them one by
// one: "482913" becomes "4, 8, 2, 9, 1, 3".
func SpellOut(code string) string {
	parts := make([]string, 0, utf8.RuneCountInString(code))
	for _, r := range code {
		parts = append(parts, string(r))
	}
	return strings.Join(parts, ", ")
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

// xmlEscape escapes text for XML content and attribute values.
func xmlEscape(s string) string { return xmlEscaper.Replace(s) }
