// Package restapi is the CIDStore REST control plane (PROTOCOL.md §2): health
// and readiness probes, Prometheus metrics, the two runtime-tunable settings
// (promotion threshold and batch size) and a per-bucket debug view.
//
// New builds an http.Handler from a Config (security and rate limits) and
// Deps (the narrow ports it reads and writes). The package knows nothing of
// the store's internals: the app adapts *cidstore.Store and its tuner to the
// Deps interfaces.
//
// # Security
//
// PUT endpoints need an admin JWT: "Authorization: Bearer <token>", signed
// with HS256 (every other algorithm, "none" included, is refused) using
// Config.JWTSecret, carrying the claim role="admin" and an exp claim (a
// token that never expires is refused; exp is honoured). A missing or
// invalid token is 401, a valid token without the role is 403. With no
// secret configured, PUTs are disabled (403): admin access is never open by
// default.
//
// /debug/ is served only to callers whose address (the TCP peer address;
// forwarding headers are ignored) is in Config.DebugAllow, loopback by
// default; others get 403.
//
// Every endpoint is rate-limited per client IP with a token bucket
// (Config.RateLimit, Config.RateBurst); a caller over its budget gets 429
// with a Retry-After header.
//
// # Errors
//
// Every error body is {"error": "<message>", "code": <HTTP status>}. Errors
// returned by Deps map to statuses through one table (errors.go).
//
// # Concurrency
//
// The handler is safe for concurrent use. Deps methods are called from
// request goroutines concurrently and must be safe for that.
package restapi
