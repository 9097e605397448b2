package restapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
)

// AdminRole is the value of the "role" claim that grants admin access.
const AdminRole = "admin"

// requireAdmin lets the request through only with a valid admin token.
//
//	no secret configured         → 403 (admin endpoints disabled)
//	no/malformed Authorization   → 401
//	bad signature, alg ≠ HS256,
//	expired, not yet valid       → 401
//	valid, role ≠ "admin"        → 403
func (h *handler) requireAdmin(c *gin.Context) {
	if len(h.cfg.JWTSecret) == 0 {
		abort(c, http.StatusForbidden, "admin endpoints are disabled: no JWT secret configured")
		return
	}
	raw, ok := bearerToken(c.GetHeader("Authorization"))
	if !ok {
		c.Header("WWW-Authenticate", `Bearer realm="cidstore"`)
		abort(c, http.StatusUnauthorized, "missing bearer token")
		return
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, h.jwtKey,
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(h.cfg.Now),
		jwt.WithLeeway(h.cfg.JWTLeeway),
		jwt.WithExpirationRequired(), // a token that never expires is refused
	)
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="cidstore", error="invalid_token"`)
		abort(c, http.StatusUnauthorized, "invalid token")
		return
	}
	if role, _ := claims["role"].(string); role != AdminRole {
		abort(c, http.StatusForbidden, "token lacks role "+AdminRole)
		return
	}
	c.Next()
}

// jwtKey returns the HS256 secret. The method check duplicates
// WithValidMethods on purpose: an HMAC key must never be handed to another
// algorithm family.
func (h *handler) jwtKey(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodHS256 {
		return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
	}
	return h.cfg.JWTSecret, nil
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header; the scheme is case-insensitive (RFC 6750).
func bearerToken(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
