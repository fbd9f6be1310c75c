package sts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// MaxPolicySize bounds a policy body (RFC 8461 §3.3 says 64 KiB).
const MaxPolicySize = 64 << 10

// DefaultTimeout bounds one fetch: connection, TLS, request and body.
const DefaultTimeout = 10 * time.Second

// Fetcher fetches policies over HTTPS.
type Fetcher struct {
	// Resolve gives the addresses of mta-sts.<domain> (posthorn's
	// resolver, so that the fetch asks the same DNS as delivery).
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// Dial opens the TCP connection to "addr:443" (tests map it to a
	// server on 127.0.0.x); nil: net.Dialer.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// RootCAs are the trust anchors for the policy host's certificate;
	// nil: the system's.
	RootCAs *x509.CertPool
	Timeout time.Duration // 0: DefaultTimeout
}

// FetchError is a policy that could not be had, with its RFC 8460
// result type.
type FetchError struct {
	Result string // sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid
	Err    error
}

func (e *FetchError) Error() string { return e.Err.Error() }
func (e *FetchError) Unwrap() error { return e.Err }

// TLSRPTResult is the failure's RFC 8460 result type.
func (e *FetchError) TLSRPTResult() string { return e.Result }

// URL is where domain's policy is.
func URL(domain string) string {
	return "https://mta-sts." + strings.TrimSuffix(strings.ToLower(domain), ".") + "/.well-known/mta-sts.txt"
}

// Fetch gets and parses domain's policy. The body is returned too, for
// the cache.
func (f *Fetcher) Fetch(ctx context.Context, domain string) (*Policy, []byte, error) {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dial := f.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	tr := &http.Transport{
		Proxy: nil, // never a proxy from the environment
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			if f.Resolve == nil {
				return nil, errors.New("no resolver")
			}
			addrs, err := f.Resolve(ctx, host)
			if err != nil {
				return nil, err
			}
			var last error = fmt.Errorf("%s has no address", host)
			for _, a := range addrs {
				c, err := dial(ctx, network, net.JoinHostPort(a.String(), port))
				if err == nil {
					return c, nil
				}
				last = err
			}
			return nil, last
		},
		TLSClientConfig:       &tls.Config{RootCAs: f.RootCAs, MinVersion: tls.VersionTLS12},
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: timeout,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // RFC 8461 §3.3: redirects are not followed
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, URL(domain), nil)
	if err != nil {
		return nil, nil, &FetchError{Result: "sts-policy-fetch-error", Err: err}
	}
	resp, err := client.Do(req)
	if err != nil {
		var ce *tls.CertificateVerificationError
		if errors.As(err, &ce) {
			return nil, nil, &FetchError{Result: "sts-webpki-invalid", Err: fmt.Errorf("%s: %w", URL(domain), err)}
		}
		return nil, nil, &FetchError{Result: "sts-policy-fetch-error", Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, &FetchError{Result: "sts-policy-fetch-error", Err: fmt.Errorf("%s: HTTP %s", URL(domain), resp.Status)}
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, nil, &FetchError{Result: "sts-policy-invalid", Err: fmt.Errorf("%s: Content-Type %q, want text/plain", URL(domain), resp.Header.Get("Content-Type"))}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, nil, &FetchError{Result: "sts-policy-fetch-error", Err: fmt.Errorf("%s: %w", URL(domain), err)}
	}
	if len(body) > MaxPolicySize {
		return nil, nil, &FetchError{Result: "sts-policy-invalid", Err: fmt.Errorf("%s: policy larger than %d bytes", URL(domain), MaxPolicySize)}
	}
	p, err := Parse(body)
	if err != nil {
		return nil, nil, &FetchError{Result: "sts-policy-invalid", Err: fmt.Errorf("%s: %w", URL(domain), err)}
	}
	return p, body, nil
}
