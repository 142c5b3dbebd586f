package verify

import (
	"strconv"
	"sync"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// Breaker is the SMS pumping circuit breaker. SMS pumping asks for codes
// that are never used: the sends earn the numbers' operators money, and
// nobody types the code. So the breaker counts, per number prefix and per
// country, the SMS sent and the codes validated within a window; when a
// prefix has had at least MinSends sends in the window and fewer than
// MinConversion of them were validated, it trips: SMS to the prefix are
// refused (429 too_many, Retry-After) until Cooldown has passed, and then
// it starts counting afresh. A country trips the same way with
// CountryFactor times the volume. An operator clears a trip with Clear.
//
// A prefix is the country calling code and the first PrefixDigits digits
// of the national number ("44 7400"). The counts live in this process's
// memory: each instance judges the traffic it sees.
//
// Every method is safe for concurrent use.
type Breaker struct {
	MinSends      int           // sends in a window before the conversion is judged
	MinConversion float64       // validated / sent below this trips
	Window        time.Duration // how long sends and validations count
	Cooldown      time.Duration // how long a trip lasts (Window when zero)
	PrefixDigits  int           // national digits in a prefix (DefaultBreakerPrefixDigits when zero)
	CountryFactor int           // a country needs this many times MinSends (DefaultBreakerCountryFactor when zero)
	// OnTrip, when set, hears each trip (for logs and metrics); it must
	// not call the breaker.
	OnTrip func(Trip)

	mu    sync.Mutex
	stats map[string]*prefixStats
	calls int
}

// Breaker defaults.
const (
	DefaultBreakerMinSends      = 50
	DefaultBreakerMinConversion = 0.2
	DefaultBreakerWindow        = time.Hour
	DefaultBreakerPrefixDigits  = 4
	DefaultBreakerCountryFactor = 10
)

// Trip describes one trip of the breaker.
type Trip struct {
	Prefix     string // "+44 7400", or "+44" for a whole country
	Sends      int
	Validated  int
	Until      time.Time
	Conversion float64
}

type prefixStats struct {
	start            time.Time // of the window
	sends, validated int
	until            time.Time // tripped until
}

// breakerKeys returns the keys of a number: its country, then its prefix.
func (b *Breaker) breakerKeys(e164 string) []string {
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

func (b *Breaker) entry(key string, now time.Time) *prefixStats {
	if b.stats == nil {
		b.stats = map[string]*prefixStats{}
	}
	s := b.stats[key]
	if s == nil {
		s = &prefixStats{start: now}
		b.stats[key] = s
	}
	// A window past, or a trip ended, starts the counts afresh.
	if !now.Before(s.until) && (!now.Before(s.start.Add(b.Window)) || !s.until.IsZero()) {
		*s = prefixStats{start: now}
	}
	return s
}

// Send is asked before an SMS to e164 is sent, at now. It returns the
// trip that refuses it, or nil, and then counts the send.
func (b *Breaker) Send(e164 string, now time.Time) *Trip {
	keys := b.breakerKeys(e164)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sweep(now)
	for _, k := range keys {
		if s := b.stats[k]; s != nil && now.Before(s.until) {
			return &Trip{Prefix: k, Sends: s.sends, Validated: s.validated, Until: s.until, Conversion: conversion(s)}
		}
	}
	var trips []Trip
	for i, k := range keys {
		s := b.entry(k, now)
		s.sends++
		min := b.MinSends
		if i == 0 {
			f := b.CountryFactor
			if f <= 0 {
				f = DefaultBreakerCountryFactor
			}
			min *= f
		}
		if s.sends >= min && conversion(s) < b.MinConversion {
			cooldown := b.Cooldown
			if cooldown <= 0 {
				cooldown = b.Window
			}
			s.until = now.Add(cooldown)
			trips = append(trips, Trip{Prefix: k, Sends: s.sends, Validated: s.validated, Until: s.until, Conversion: conversion(s)})
		}
	}
	if b.OnTrip != nil {
		for _, t := range trips {
			b.OnTrip(t)
		}
	}
	return nil // this send was counted before the trip: it goes
}

// Validated counts a code sent to e164 that was used, at now.
func (b *Breaker) Validated(e164 string, now time.Time) {
	keys := b.breakerKeys(e164)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		if s := b.stats[k]; s != nil && now.Before(s.start.Add(b.Window)) && s.validated < s.sends {
			s.validated++
		}
	}
}

// Clear ends a trip of prefix ("+44 7400" or "+44") and forgets its
// counts; it reports whether the prefix was tripped.
func (b *Breaker) Clear(prefix string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats[prefix]
	if s == nil {
		return false
	}
	delete(b.stats, prefix)
	return now.Before(s.until)
}

// Tripped lists the prefixes tripped at now.
func (b *Breaker) Tripped(now time.Time) []Trip {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Trip
	for k, s := range b.stats {
		if now.Before(s.until) {
			out = append(out, Trip{Prefix: k, Sends: s.sends, Validated: s.validated, Until: s.until, Conversion: conversion(s)})
		}
	}
	return out
}

// sweep drops, now and then, the counts of windows long past and trips
// ended, so that the map stays as small as the traffic of a window.
func (b *Breaker) sweep(now time.Time) {
	b.calls++
	if b.calls%1024 != 0 {
		return
	}
	for k, s := range b.stats {
		if !now.Before(s.start.Add(b.Window)) && !now.Before(s.until) {
			delete(b.stats, k)
		}
	}
}

func conversion(s *prefixStats) float64 {
	if s.sends == 0 {
		return 1
	}
	return float64(s.validated) / float64(s.sends)
}
