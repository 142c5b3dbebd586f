package verify

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/tessera-id/tessera"
)

// Breaker is the SMS pumping circuit breaker. SMS pumping asks for codes
// that are never used: the sends earn the numbers' operators money, and
// nobody types the code. WhatsApp messages and calls cost money the same
// way, so the breaker counts every phone channel together.
//
// It counts, per number prefix and per country, the codes sent and the
// codes validated within a window. A prefix is closed while it converts:
// when it has had at least MinSends sends in the window and fewer than
// MinConversion of them were validated, it opens, and codes to it are
// refused (429 too_many, Retry-After) for Cooldown. Then it is half-open:
// HalfOpenProbes codes go through as probes; as soon as enough of them are
// used (MinConversion of the probes, at least one) it closes and counts
// afresh; if the probes are not used within another Cooldown it opens
// again. A country opens the same way with CountryFactor times the volume.
// An operator clears a prefix with Clear (`tessera sms-breaker clear`).
//
// A prefix is the country calling code and the first PrefixDigits digits
// of the national number ("+44 7400"). The counts and states live in
// Store: in this process's memory by default, or in Redis
// (RedisBreakerStore) so that every instance judges all the traffic and
// a prefix open on one is open on all. Times come from the caller's clock.
//
// Every method is safe for concurrent use.
type Breaker struct {
	MinSends       int           // sends in a window before the conversion is judged
	MinConversion  float64       // validated / sent below this opens
	Window         time.Duration // how long sends and validations count
	Cooldown       time.Duration // how long it stays open, and how long probes have (Window when zero)
	PrefixDigits   int           // national digits in a prefix (DefaultBreakerPrefixDigits when zero)
	CountryFactor  int           // a country needs this many times MinSends (DefaultBreakerCountryFactor when zero)
	HalfOpenProbes int           // codes let through while half-open (DefaultBreakerProbes when zero)
	// Store keeps the counts (a MemoryBreakerStore when nil).
	Store BreakerStore
	// OnChange, when set, hears each change of state (for logs, metrics
	// and the audit log); it must not call the breaker. With a shared
	// store each change is heard once, by the instance that made it.
	OnChange func(BreakerChange)

	memory MemoryBreakerStore
}

// Breaker defaults.
const (
	DefaultBreakerMinSends      = 50
	DefaultBreakerMinConversion = 0.2
	DefaultBreakerWindow        = time.Hour
	DefaultBreakerPrefixDigits  = 4
	DefaultBreakerCountryFactor = 10
	DefaultBreakerProbes        = 5
)

// The states of a prefix.
const (
	BreakerClosed   = "closed"    // counting; codes go out
	BreakerOpen     = "open"      // codes are refused until Until
	BreakerHalfOpen = "half_open" // a few probes go out until Until
	BreakerCleared  = "cleared"   // (a change only) an operator cleared it
)

// BreakerEntry is the state of one prefix or country.
type BreakerEntry struct {
	State     string    `json:"state,omitempty"` // "" is closed
	Start     time.Time `json:"start"`           // of the counting window
	Sends     int       `json:"sends,omitempty"`
	Validated int       `json:"validated,omitempty"`
	// Until is when an open prefix turns half-open, and when a half-open
	// one's probes must have been used.
	Until           time.Time `json:"until,omitzero"`
	Probes          int       `json:"probes,omitempty"`
	ProbesValidated int       `json:"probesValidated,omitempty"`
}

// Conversion is the share of the window's codes that were used.
func (s *BreakerEntry) Conversion() float64 {
	if s.Sends == 0 {
		return 1
	}
	return float64(s.Validated) / float64(s.Sends)
}

func (s *BreakerEntry) state() string {
	if s.State == "" {
		return BreakerClosed
	}
	return s.State
}

// BreakerStore keeps the breaker's entries by key ("+44 7400", "+44").
type BreakerStore interface {
	// Update reads the entries of keys (a zero entry for a key it has
	// none of), runs fn on them and stores what fn left, as one atomic
	// step. fn may run more than once (a shared store retries when
	// another instance changed the entries meanwhile); only its last run
	// counts.
	// fn gets the time to judge the entries at: now on the store's clock
	// (see Clock).
	Update(ctx context.Context, keys []string, retain time.Duration, now time.Time, fn func(entries []*BreakerEntry, now time.Time)) error
	// Clock returns now on the store's clock. A store shared by instances
	// keeps one clock for all of them, so that an instance whose clock is
	// off neither half-opens a prefix early nor restarts a window: it
	// returns now moved by how far the caller's wall clock is from the
	// store's (0 where they agree; now itself may be a test clock).
	Clock(ctx context.Context, now time.Time) (time.Time, error)
	// Entries returns every entry.
	Entries(ctx context.Context) (map[string]*BreakerEntry, error)
	// Delete removes the entry of key and returns it (nil if none).
	Delete(ctx context.Context, key string) (*BreakerEntry, error)
}

// Trip is a refusal: the prefix that refused a send and until when.
type Trip struct {
	Prefix     string // "+44 7400", or "+44" for a whole country
	State      string // BreakerOpen, or BreakerHalfOpen with its probes used
	Sends      int
	Validated  int
	Until      time.Time
	Conversion float64
}

// BreakerChange is a change of a prefix's state.
type BreakerChange struct {
	Prefix     string
	State      string // the new state: open, half_open, closed or cleared
	Sends      int    // of the window that opened it, or the probes
	Validated  int
	Conversion float64
	Until      time.Time // open and half_open: until when
	At         time.Time
}

// Level is "country" for a whole country's entry, "prefix" otherwise.
func (c BreakerChange) Level() string {
	if strings.Contains(c.Prefix, " ") {
		return "prefix"
	}
	return "country"
}

// AuditEvent is the audit log's record of the change.
func (c BreakerChange) AuditEvent() *tessera.AuditEvent {
	var detail, kind string
	switch c.State {
	case BreakerOpen:
		kind = tessera.AuditSMSBreakerOpen
		detail = fmt.Sprintf("%s: %d of %d codes used (%.0f%%); codes refused until %s", c.Prefix, c.Validated, c.Sends, c.Conversion*100, c.Until.UTC().Format(time.RFC3339))
	case BreakerHalfOpen:
		kind = tessera.AuditSMSBreakerHalfOpen
		detail = fmt.Sprintf("%s: a few probe codes go out until %s", c.Prefix, c.Until.UTC().Format(time.RFC3339))
	case BreakerClosed:
		kind = tessera.AuditSMSBreakerClosed
		detail = fmt.Sprintf("%s: %d of %d probe codes used", c.Prefix, c.Validated, c.Sends)
	default:
		kind = tessera.AuditSMSBreakerCleared
		detail = c.Prefix + ": cleared by an operator"
	}
	return &tessera.AuditEvent{At: c.At, Kind: kind, Detail: detail}
}

// BreakerKeys returns the keys of a number: its country, then its prefix.
func (b *Breaker) BreakerKeys(e164 string) []string {
	num, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return nil
	}
	cc := "+" + strconv.Itoa(int(num.GetCountryCode()))
	n := b.PrefixDigits
	if n <= 0 {
		n = DefaultBreakerPrefixDigits
	}
	nsn := phonenumbers.GetNationalSignificantNumber(num)
	if len(nsn) > n {
		nsn = nsn[:n]
	}
	return []string{cc, cc + " " + nsn}
}

// NormalizeBreakerPrefix reads a prefix as an operator types it: "+44
// 7400", "+447400" or "+44" (a country).
func NormalizeBreakerPrefix(s string) (string, error) {
	s = strings.Join(strings.Fields(s), "")
	digits := strings.TrimPrefix(s, "+")
	if digits == s || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return "", fmt.Errorf("%q is not a prefix such as \"+44 7400\" or \"+44\"", s)
	}
	for n := 1; n <= 3 && n <= len(digits); n++ {
		cc, _ := strconv.Atoi(digits[:n])
		if phonenumbers.GetRegionCodeForCountryCode(cc) != "ZZ" {
			if n == len(digits) {
				return "+" + digits, nil
			}
			return "+" + digits[:n] + " " + digits[n:], nil
		}
	}
	return "", fmt.Errorf("%q does not start with a country calling code", s)
}

func (b *Breaker) store() BreakerStore {
	if b.Store != nil {
		return b.Store
	}
	return &b.memory
}

func (b *Breaker) cooldown() time.Duration {
	if b.Cooldown > 0 {
		return b.Cooldown
	}
	return b.Window
}

func (b *Breaker) probes() int {
	if b.HalfOpenProbes > 0 {
		return b.HalfOpenProbes
	}
	return DefaultBreakerProbes
}

// retain is how long an untouched entry is worth keeping: past it, it is
// closed and its window over, the same as no entry.
func (b *Breaker) retain() time.Duration { return b.Window + 2*b.cooldown() }

// probesNeeded is how many probes must be used to close.
func (b *Breaker) probesNeeded() int {
	return max(1, int(math.Ceil(b.MinConversion*float64(b.probes()))))
}

// advance moves an entry to where time has taken it at now, recording the
// changes that makes.
func (b *Breaker) advance(key string, s *BreakerEntry, now time.Time, changes *[]BreakerChange) {
	switch s.state() {
	case BreakerOpen:
		if now.Before(s.Until) {
			return
		}
		s.State, s.Until, s.Probes, s.ProbesValidated = BreakerHalfOpen, now.Add(b.cooldown()), 0, 0
		*changes = append(*changes, BreakerChange{Prefix: key, State: BreakerHalfOpen, Until: s.Until, At: now})
	case BreakerHalfOpen:
		if now.Before(s.Until) {
			return
		}
		if s.Probes == 0 {
			s.Until = now.Add(b.cooldown()) // nobody asked: no evidence either way
			return
		}
		// The probes were not used: still pumped.
		*changes = append(*changes, BreakerChange{Prefix: key, State: BreakerOpen, Sends: s.Probes, Validated: s.ProbesValidated,
			Conversion: float64(s.ProbesValidated) / float64(s.Probes), Until: now.Add(b.cooldown()), At: now})
		s.State, s.Until, s.Probes, s.ProbesValidated = BreakerOpen, now.Add(b.cooldown()), 0, 0
	default:
		if !now.Before(s.Start.Add(b.Window)) {
			*s = BreakerEntry{Start: now}
		}
	}
}

// Send is asked before a code goes to e164, at now. It returns the trip
// that refuses it, or nil, and then counts the send.
func (b *Breaker) Send(ctx context.Context, e164 string, now time.Time) (*Trip, error) {
	keys := b.BreakerKeys(e164)
	if keys == nil {
		return nil, nil
	}
	var trip *Trip
	var changes []BreakerChange
	var offset time.Duration // from the store's clock to the caller's
	err := b.store().Update(ctx, keys, b.retain(), now, func(entries []*BreakerEntry, storeNow time.Time) {
		trip, changes, offset = nil, nil, now.Sub(storeNow)
		now := storeNow
		for i, s := range entries {
			b.advance(keys[i], s, now, &changes)
			refused := s.state() == BreakerOpen || (s.state() == BreakerHalfOpen && s.Probes >= b.probes())
			if refused && trip == nil {
				trip = &Trip{Prefix: keys[i], State: s.state(), Sends: s.Sends, Validated: s.Validated, Until: s.Until, Conversion: s.Conversion()}
			}
		}
		if trip != nil {
			return // counted nowhere: it was not sent
		}
		for i, s := range entries {
			if s.state() == BreakerHalfOpen {
				s.Probes++
				continue
			}
			s.Sends++
			min := b.MinSends
			if i == 0 {
				f := b.CountryFactor
				if f <= 0 {
					f = DefaultBreakerCountryFactor
				}
				min *= f
			}
			if s.Sends >= min && s.Conversion() < b.MinConversion {
				s.State, s.Until = BreakerOpen, now.Add(b.cooldown())
				changes = append(changes, BreakerChange{Prefix: keys[i], State: BreakerOpen, Sends: s.Sends, Validated: s.Validated,
					Conversion: s.Conversion(), Until: s.Until, At: now})
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if trip != nil {
		trip.Until = trip.Until.Add(offset)
	}
	b.tell(shifted(changes, offset))
	return trip, nil // a send that opened its prefix was counted before: it goes
}

// Validated counts a code sent to e164 that was used, at now.
func (b *Breaker) Validated(ctx context.Context, e164 string, now time.Time) error {
	keys := b.BreakerKeys(e164)
	if keys == nil {
		return nil
	}
	var changes []BreakerChange
	var offset time.Duration
	err := b.store().Update(ctx, keys, b.retain(), now, func(entries []*BreakerEntry, storeNow time.Time) {
		changes, offset = nil, now.Sub(storeNow)
		now := storeNow
		for i, s := range entries {
			b.advance(keys[i], s, now, &changes)
			switch s.state() {
			case BreakerHalfOpen:
				if s.ProbesValidated < s.Probes {
					s.ProbesValidated++
				}
				if s.ProbesValidated >= b.probesNeeded() {
					changes = append(changes, BreakerChange{Prefix: keys[i], State: BreakerClosed, Sends: s.Probes, Validated: s.ProbesValidated,
						Conversion: float64(s.ProbesValidated) / float64(s.Probes), At: now})
					*s = BreakerEntry{Start: now}
				}
			case BreakerClosed:
				if s.Validated < s.Sends {
					s.Validated++
				}
			}
		}
	})
	if err != nil {
		return err
	}
	b.tell(shifted(changes, offset))
	return nil
}

// shifted moves the times of changes judged on the store's clock by offset,
// onto the caller's.
func shifted(changes []BreakerChange, offset time.Duration) []BreakerChange {
	for i := range changes {
		changes[i].At = changes[i].At.Add(offset)
		if !changes[i].Until.IsZero() {
			changes[i].Until = changes[i].Until.Add(offset)
		}
	}
	return changes
}

// Clear closes prefix ("+44 7400" or "+44") and forgets its counts; it
// reports whether the prefix was open or half-open (and then tells a
// cleared change).
func (b *Breaker) Clear(ctx context.Context, prefix string, now time.Time) (bool, error) {
	storeNow, err := b.store().Clock(ctx, now)
	if err != nil {
		return false, err
	}
	s, err := b.store().Delete(ctx, prefix)
	if err != nil || s == nil {
		return false, err
	}
	b.advance(prefix, s, storeNow, new([]BreakerChange))
	if s.state() == BreakerClosed {
		return false, nil
	}
	b.tell([]BreakerChange{{Prefix: prefix, State: BreakerCleared, Sends: s.Sends, Validated: s.Validated, Conversion: s.Conversion(), At: now}})
	return true, nil
}

// BreakerStatus is one prefix as Status shows it.
type BreakerStatus struct {
	Prefix string
	BreakerEntry
}

// Status lists the entries as they are at now, sorted by prefix: the open
// and half-open ones, or with all every one still counting. Their times
// are the store's clock's.
func (b *Breaker) Status(ctx context.Context, now time.Time, all bool) ([]BreakerStatus, error) {
	storeNow, err := b.store().Clock(ctx, now)
	if err != nil {
		return nil, err
	}
	entries, err := b.store().Entries(ctx)
	if err != nil {
		return nil, err
	}
	var out []BreakerStatus
	for k, s := range entries {
		b.advance(k, s, storeNow, new([]BreakerChange))
		if all || s.state() != BreakerClosed {
			out = append(out, BreakerStatus{Prefix: k, BreakerEntry: *s})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix < out[j].Prefix })
	return out, nil
}

func (b *Breaker) tell(changes []BreakerChange) {
	if b.OnChange == nil {
		return
	}
	for _, c := range changes {
		b.OnChange(c)
	}
}
