package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tessera-id/tessera"
)

// channelEnabled reports whether this server can send on ch.
func (e *Engine) channelEnabled(ch tessera.Channel) bool {
	return e.Channels == nil || e.Channels[ch]
}

// checkMethodEnabled refuses a method whose channel has no sender here, as
// an unknown method is refused: it does not exist on this server.
func (e *Engine) checkMethodEnabled(m tessera.Method) error {
	if ch := m.Channel(); ch != "" && !e.channelEnabled(ch) {
		return tessera.Errorf(tessera.ENOTFOUND, "Method not supported: %s is not enabled on this server", m)
	}
	return nil
}

// fallbackFor is the fallback order of a new verification of method:
// the one the request names, checked, or for a phone method the server's
// PhoneFallback after the method's own channel.
func (e *Engine) fallbackFor(m tessera.Method, requested []tessera.Channel) ([]tessera.Channel, error) {
	if requested == nil {
		if !m.Phone() {
			return nil, nil
		}
		i := slices.Index(e.PhoneFallback, m.Channel())
		if i < 0 {
			return nil, nil
		}
		var out []tessera.Channel
		for _, ch := range e.PhoneFallback[i+1:] {
			if e.channelEnabled(ch) {
				out = append(out, ch)
			}
		}
		return out, nil
	}
	if len(requested) == 0 {
		return nil, nil
	}
	if !m.Phone() {
		return nil, errors.New("only the phone methods (phone, whatsapp, call) fall back to other channels")
	}
	if err := checkPhoneOrder(requested, m.Channel()); err != nil {
		return nil, err
	}
	for _, ch := range requested {
		if !e.channelEnabled(ch) {
			return nil, fmt.Errorf("%s is not enabled on this server", ch)
		}
	}
	return requested, nil
}

// checkPhoneOrder checks an order of phone channels: each one of sms,
// whatsapp and call, once, and not first (the method's own channel, when
// given).
func checkPhoneOrder(order []tessera.Channel, first tessera.Channel) error {
	seen := map[tessera.Channel]bool{first: true}
	for _, ch := range order {
		if !slices.Contains(tessera.PhoneChannels, ch) {
			return fmt.Errorf("%q is not a phone channel: name some of sms, whatsapp and call", ch)
		}
		if seen[ch] {
			if ch == first {
				return fmt.Errorf("%s is the method's own channel, tried first already", ch)
			}
			return fmt.Errorf("%s is named twice", ch)
		}
		seen[ch] = true
	}
	return nil
}

// ParsePhoneFallback reads TESSERA_PHONE_FALLBACK: phone channels in the
// order they are tried, comma-separated ("whatsapp,sms,call"); empty or
// "off" for none.
func ParsePhoneFallback(s string) ([]tessera.Channel, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "" || s == "off" {
		return nil, nil
	}
	var out []tessera.Channel
	for _, f := range strings.Split(s, ",") {
		out = append(out, tessera.Channel(strings.TrimSpace(f)))
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("%q: name at least two of sms, whatsapp and call, in the order to try them", s)
	}
	if err := checkPhoneOrder(out, ""); err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	return out, nil
}

// FormatPhoneFallback writes an order as ParsePhoneFallback reads it.
func FormatPhoneFallback(order []tessera.Channel) string {
	if len(order) == 0 {
		return "off"
	}
	parts := make([]string, len(order))
	for i, ch := range order {
		parts[i] = string(ch)
	}
	return strings.Join(parts, ",")
}

// AwaitsCode reports whether v still waits for its code at now: not used,
// expired or locked (nor deleted, when the caller found none). Only then
// does a failed message fall back to the next, often dearer, channel.
func AwaitsCode(v *tessera.Verification, now time.Time) bool {
	return v.ConsumedAt.IsZero() && !v.Expired(now) && !v.Locked()
}

// FallBackAfterReport queues the next channel of a message a provider
// reported undelivered or failed after accepting it (a status callback),
// and returns the new message; nil when there is nothing to do: the
// verification was used, expired or locked meanwhile, its order has no
// channel left, it kept no copy of its message (NoResend), or the message
// fell back already (a repeated report).
func (e *Engine) FallBackAfterReport(ctx context.Context, messageID string) (*tessera.Message, error) {
	fs, ok := e.Store.(tessera.FallbackStore)
	if !ok {
		return nil, nil
	}
	m, err := fs.MessageByID(ctx, messageID)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	next, err := e.successor(ctx, m, e.now())
	if next == nil || err != nil {
		return nil, err
	}
	err = fs.FallBack(ctx, m.ID, next)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e.handOver(next)
	return next, nil
}

// successor builds, without queueing it, the message that takes over from
// m on the next channel of its verification's order, from the content the
// verification kept for resends; nil when there is nothing to do (see
// FallBackAfterReport).
func (e *Engine) successor(ctx context.Context, m *tessera.Message, now time.Time) (*tessera.Message, error) {
	if m.VerificationID == "" {
		return nil, nil
	}
	v, err := e.Store.Verification(ctx, m.Owner, m.VerificationID)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !AwaitsCode(v, now) || v.SealedContent == nil {
		return nil, nil
	}
	plain, err := e.Keys.Open(v.SealedContent, contentAD(v.Owner, v.ID))
	if err != nil {
		return nil, fmt.Errorf("open message content: %w", err)
	}
	var content tessera.MessageContent
	if err := json.Unmarshal(plain, &content); err != nil {
		return nil, fmt.Errorf("decode message content: %w", err)
	}
	// The kept content has the whole order; what is left is what follows
	// the reported message's channel.
	rest := content.Fallback
	if m.Channel != v.Method.Channel() {
		i := slices.Index(rest, m.Channel)
		if i < 0 {
			return nil, nil
		}
		rest = rest[i+1:]
	}
	if len(rest) == 0 {
		return nil, nil
	}
	content.Fallback = rest[1:]
	if plain, err = json.Marshal(content); err != nil {
		return nil, err
	}
	next, err := e.newMessage(v.Owner, v, plain, now)
	if err != nil {
		return nil, err
	}
	next.Channel = rest[0]
	if !now.After(m.CreatedAt) {
		next.CreatedAt = m.CreatedAt.Add(time.Millisecond) // the newest message is the one in play
	}
	return next, nil
}
