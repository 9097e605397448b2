package restapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	restapi "github.com/cidstore/cidstore/transport-rest"
	"github.com/golang-jwt/jwt/v5"
)

// FuzzPutBatchSize sends arbitrary bodies to PUT /config/batch_size (the
// decoder of the runtime settings' bodies): the answer is 200, 400, 413 or
// 422 with the error body of PROTOCOL.md §2; a 200 sets a value in
// [32, 1024] that the reply names; anything else changes nothing.
func FuzzPutBatchSize(f *testing.F) {
	for _, s := range []string{
		`{"batch_size": 64}`, `{"batch_size": 64.0}`, `{"batch_size": 6.4e1}`, `{"batch_size": 64.5}`,
		`{"batch_size": 1e30}`, `{"batch_size": -1e400}`, `{"batch_size": 99999999999999999999}`,
		`{"batch_size": "64"}`, `{"batch_size": null}`, `{"batch_size": [64]}`, `{}`, `null`, ``,
		`{"batch_size": 64}{}`, `{"batch_size": 64, "x": 1}`, `{"batch_size": -0}`, `{"batch_size": 1024.0000000000001}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		d := newFakeDeps()
		h := newHandler(t, restapi.Config{JWTSecret: testSecret}, d.deps(nil))
		tok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"role": "admin", "exp": testNow.Add(time.Hour).Unix()})
		before := d.BatchSize()
		w := do(t, h, request{method: http.MethodPut, path: "/config/batch_size", body: body, token: tok})
		switch w.Code {
		case 200:
			var got map[string]int
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("200 reply %q: %v", w.Body, err)
			}
			if n := d.BatchSize(); n < 32 || n > 1024 || got["batch_size"] != n {
				t.Fatalf("body %q: batch size set to %d, reply %v", body, n, got)
			}
		case 400, 413, 422:
			wantStatus(t, w, w.Code) // the error body's shape
			if d.BatchSize() != before {
				t.Fatalf("body %q answered %d changed the batch size to %d", body, w.Code, d.BatchSize())
			}
		default:
			t.Fatalf("body %q: status %d %s", body, w.Code, w.Body)
		}
	})
}
