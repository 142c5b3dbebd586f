package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// loadBrowser reads the settings for browser apps and developers: the
// CORS allow-list and the development inbox. It runs after the database
// and the senders are known.
func (c *Config) loadBrowser(get func(name, def string) string, bad func(string, ...any)) {
	for _, o := range strings.Split(get("TESSERA_CORS_ORIGINS", ""), ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		origin, err := CanonicalOrigin(o)
		if err != nil {
			bad("TESSERA_CORS_ORIGINS: %v", err)
			continue
		}
		c.CORSOrigins = append(c.CORSOrigins, origin)
	}

	// The inbox shows every code in clear text, so without an explicit
	// setting it is on only where nobody else can reach it: a loopback
	// listen address, on SQLite (a PostgreSQL deployment is a shared one),
	// with no sign of a reverse proxy in front (trusted proxies, a public
	// URL), which would make loopback reachable from anywhere.
	switch v := get("TESSERA_DEV_INBOX", ""); v {
	case "":
		c.DevInbox = loopback(c.Addr) && !c.UsesPostgres() && len(c.TrustedProxies) == 0 && c.PublicURL == ""
	default:
		on, err := strconv.ParseBool(v)
		if err != nil {
			bad("TESSERA_DEV_INBOX: must be 1 (on) or 0 (off), not %q", v)
		}
		c.DevInbox, c.DevInboxAnywhere = on, on
	}
	// It shows what the log sender delivers; with real senders only it
	// would stay empty.
	if c.EmailSender != "log" && c.SMSSender != "log" {
		c.DevInbox, c.DevInboxAnywhere = false, false
	}
}

// CanonicalOrigin checks that o is an origin as a browser sends it in the
// Origin header (scheme://host[:port], http or https, no path) and returns
// it in that form: lower case, without the scheme's default port.
func CanonicalOrigin(o string) (string, error) {
	if o == "*" || o == "null" {
		return "", fmt.Errorf("%q is not allowed: list each origin, such as https://app.example.com", o)
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("%q is not an origin such as https://app.example.com (scheme, host and port only)", o)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("%q must use https or http", o)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	// A page served over plain HTTP is anyone's on its network path:
	// allowed, its injected script would drive the accounts API in the
	// user's name. Only a developer's own machine may use http, as for
	// the return URLs.
	if ip := net.ParseIP(host); scheme == "http" && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", fmt.Errorf("%q must use https (http only for localhost)", o)
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// loopback reports whether a listen address accepts connections from this
// machine only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
