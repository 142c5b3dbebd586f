// Package metrics exposes Tessera's figures to Prometheus. The other
// packages know nothing of Prometheus: they report through plain function
// hooks, which app wires to the collectors here.
package metrics

import (
	"context"
	"database/sql"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the collectors, in a registry of their own.
type Metrics struct {
	Registry *prometheus.Registry

	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	verifications *prometheus.CounterVec
	deliveries    *prometheus.CounterVec
	logins        *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	reports       *prometheus.CounterVec
	conversions   *prometheus.CounterVec
	breakerTrips  *prometheus.CounterVec
	breakerStates *prometheus.CounterVec
}

// New registers Tessera's collectors and the Go runtime's.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_http_requests_total", Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tessera_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_verifications_total", Help: "Verifications by method and outcome: initiated, validated, failed, locked, expired.",
		}, []string{"method", "result"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_outbox_deliveries_total", Help: "Outbox delivery attempts by channel, sender and result: sent, retry, failed.",
		}, []string{"channel", "sender", "result"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_logins_total", Help: "Logins by result: success, mfa_required, mfa_success, failed, locked.",
		}, []string{"result"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_rate_limited_total", Help: "Requests refused by a rate limit or cooldown (429), by route pattern.",
		}, []string{"route"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_delivery_reports_total", Help: "Final delivery reports of providers (status callbacks) by channel and status: delivered, undelivered, failed.",
		}, []string{"channel", "status"}),
		conversions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_verification_conversions_total", Help: "Verifications validated after their message was reported delivered, by channel.",
		}, []string{"channel"}),
		breakerTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_sms_breaker_trips_total", Help: "Trips of the SMS pumping breaker, by country calling code and level: prefix or country.",
		}, []string{"country", "level"}),
		breakerStates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_sms_breaker_changes_total", Help: "Changes of state of the SMS pumping breaker, by new state (open, half_open, closed, cleared) and level (prefix or country).",
		}, []string{"state", "level"}),
	}
	m.Registry.MustRegister(m.requests, m.latency, m.verifications, m.deliveries, m.logins, m.rateLimited, m.reports, m.conversions, m.breakerTrips, m.breakerStates,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// ObserveRequest records one HTTP request. route is the mux pattern (never
// the raw path, so ids do not become labels); "unmatched" for none.
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
	if status == http.StatusTooManyRequests {
		m.rateLimited.WithLabelValues(route).Inc()
	}
}

// ObserveDeliveryReport records a provider's final report on a message.
func (m *Metrics) ObserveDeliveryReport(channel, status string) {
	m.reports.WithLabelValues(channel, status).Inc()
}

// ObserveConversion records a verification validated after its message
// was delivered.
func (m *Metrics) ObserveConversion(channel string) { m.conversions.WithLabelValues(channel).Inc() }

// ObserveVerification records a verification outcome.
func (m *Metrics) ObserveVerification(method, result string) {
	m.verifications.WithLabelValues(method, result).Inc()
}

// ObserveDelivery records a delivery attempt.
func (m *Metrics) ObserveDelivery(channel, sender, result string) {
	m.deliveries.WithLabelValues(channel, sender, result).Inc()
}

// ObserveLogin records a login outcome.
func (m *Metrics) ObserveLogin(result string) { m.logins.WithLabelValues(result).Inc() }

// WatchOutbox publishes the number of messages waiting, read at each scrape.
func (m *Metrics) WatchOutbox(depth func(ctx context.Context) (int, error)) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tessera_outbox_pending", Help: "Messages in the outbox waiting to be sent.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := depth(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
}

// WatchDB publishes a connection pool's figures (open, in use, waits…).
func (m *Metrics) WatchDB(name string, db *sql.DB) {
	m.Registry.MustRegister(collectors.NewDBStatsCollector(db, name))
}

// ObserveBreakerTrip counts a trip of the SMS pumping breaker; country is
// the calling code ("+44"), level "prefix" or "country".
func (m *Metrics) ObserveBreakerTrip(country, level string) {
	m.breakerTrips.WithLabelValues(country, level).Inc()
}

// ObserveBreakerChange counts a change of state of the SMS pumping
// breaker: state is the new one, level "prefix" or "country".
func (m *Metrics) ObserveBreakerChange(state, level string) {
	m.breakerStates.WithLabelValues(state, level).Inc()
}
