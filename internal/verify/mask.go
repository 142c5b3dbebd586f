package verify

import (
	"strings"

	"github.com/tessera-id/tessera"
)

// MaskEmail keeps the first and last character of the local part and
// the domain: "alice@example.com" → "a***e@example.com".
func MaskEmail(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" {
		return "***"
	}
	r := []rune(local)
	switch len(r) {
	case 1:
		return "*@" + domain
	case 2:
		return string(r[0]) + "*@" + domain
	}
	return string(r[0]) + "***" + string(r[len(r)-1]) + "@" + domain
}

// MaskPhone keeps the "+", the first two digits and the last two of an
// E.164 number: "+14155552671" → "+14*******71".
func MaskPhone(phone string) string {
	if len(phone) < 6 || phone[0] != '+' {
		if phone == "" {
			return ""
		}
		return "***"
	}
	return phone[:3] + strings.Repeat("*", len(phone)-5) + phone[len(phone)-2:]
}

// MaskDestination masks where a message of channel went; "" for a
// channel whose recipient is no person's address.
func MaskDestination(ch tessera.Channel, to string) string {
	switch ch {
	case tessera.ChannelEmail:
		return MaskEmail(to)
	case tessera.ChannelSMS, tessera.ChannelWhatsApp, tessera.ChannelCall:
		return MaskPhone(to)
	}
	return ""
}
