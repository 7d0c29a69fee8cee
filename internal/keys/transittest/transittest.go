// Package transittest is an in-process Vault/OpenBao transit engine for
// tests: the real server cannot run here, so this one speaks its HTTP wire
// protocol (the part Ward uses) through a real listener.
//
// Served under /v1/<mount>/, with the X-Vault-Token header checked:
//
//	POST keys/:name            create (type aes256-gcm96, derived)
//	GET  keys/:name            read: latest_version, min_decryption_version, keys
//	POST keys/:name/rotate     new latest version
//	POST keys/:name/config     min_decryption_version
//	POST encrypt/:name         plaintext, context, key_version, batch_input
//	POST decrypt/:name         ciphertext, context, batch_input
//	POST rewrap/:name          ciphertext, context, key_version, batch_input
//
// Ciphertexts are "vault:v<N>:" + base64(nonce | AES-256-GCM ciphertext);
// a derived key takes a per-context key from the version's key (HKDF here,
// as Vault derives one per context), so a ciphertext does not decrypt under
// another context. Errors are {"errors": [...]} with Vault's statuses.
package transittest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a running transit engine.
type Server struct {
	// URL is the address to give the Vault client.
	URL string
	// Token is the only token accepted.
	Token string
	// Mount is the path the engine is mounted at ("transit").
	Mount string
	// Requests counts the requests served (encrypt, decrypt, rewrap
	// operations count once per batch item).
	Requests atomic.Int64

	hs   *httptest.Server
	addr string
	re   *http.Server // serving since Restart

	mu   sync.Mutex
	keys map[string]*key
}

type key struct {
	derived  bool
	versions [][]byte // versions[i] is version i+1
	created  []time.Time
	minDec   int
}

// Start starts a transit engine on a loopback listener; Close stops it.
func Start() *Server {
	s := &Server{Token: "test-root-" + randHex(8), Mount: "transit", keys: map[string]*key{}}
	s.hs = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL, s.addr = s.hs.URL, s.hs.Listener.Addr().String()
	return s
}

// Close stops the server: the next requests are refused connections.
func (s *Server) Close() {
	if s.re != nil {
		s.re.Close()
	}
	s.hs.Close()
}

// Stop closes the listener and every open connection, like a transit
// server going down; Restart serves the same keys again on the same
// address.
func (s *Server) Stop() {
	if s.re != nil {
		s.re.Close()
		s.re = nil
		return
	}
	s.hs.Listener.Close()
	s.hs.CloseClientConnections()
}

// Restart listens again on the address of before Stop.
func (s *Server) Restart() error {
	var l net.Listener
	var err error
	for range 50 { // the port may linger a moment after Stop
		if l, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	s.re = &http.Server{Handler: http.HandlerFunc(s.serve)}
	go s.re.Serve(l)
	return nil
}

// LatestVersion is a key's newest version (0: no such key).
func (s *Server) LatestVersion(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.keys[name]; k != nil {
		return len(k.versions)
	}
	return 0
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func fail(status int, format string, args ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	data, err := s.route(r)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status := http.StatusInternalServerError
		var ae *apiError
		if errors.As(err, &ae) {
			status = ae.status
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"errors": []string{err.Error()}})
		return
	}
	if data == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"request_id": randHex(8), "lease_id": "", "renewable": false, "lease_duration": 0, "data": data})
}

func (s *Server) route(r *http.Request) (map[string]any, error) {
	if r.Header.Get("X-Vault-Token") != s.Token {
		return nil, fail(http.StatusForbidden, "permission denied")
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/"+s.Mount+"/")
	if !ok {
		return nil, fail(http.StatusNotFound, "no handler for route %q", r.URL.Path)
	}
	parts := strings.Split(rest, "/")
	body := map[string]any{}
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 32<<20)).Decode(&body); err != nil && err.Error() != "EOF" {
			return nil, fail(http.StatusBadRequest, "failed to parse JSON input: %v", err)
		}
	}
	write := r.Method == http.MethodPost || r.Method == http.MethodPut
	switch {
	case len(parts) == 2 && parts[0] == "keys" && r.Method == http.MethodGet:
		return s.readKey(parts[1])
	case len(parts) == 2 && parts[0] == "keys" && write:
		return s.createKey(parts[1], body)
	case len(parts) == 3 && parts[0] == "keys" && parts[2] == "rotate" && write:
		return s.rotate(parts[1])
	case len(parts) == 3 && parts[0] == "keys" && parts[2] == "config" && write:
		return s.config(parts[1], body)
	case len(parts) == 2 && write && (parts[0] == "encrypt" || parts[0] == "decrypt" || parts[0] == "rewrap"):
		return s.batch(parts[0], parts[1], body)
	}
	return nil, fail(http.StatusMethodNotAllowed, "unsupported operation %s %s", r.Method, r.URL.Path)
}

func (s *Server) readKey(name string) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[name]
	if k == nil {
		return nil, fail(http.StatusNotFound, "key not found")
	}
	vs := map[string]any{}
	for i, t := range k.created {
		vs[strconv.Itoa(i+1)] = t.Unix()
	}
	return map[string]any{"name": name, "type": "aes256-gcm96", "derived": k.derived, "latest_version": len(k.versions),
		"min_decryption_version": k.minDec, "min_encryption_version": 0, "keys": vs, "supports_encryption": true, "supports_decryption": true}, nil
}

func (s *Server) createKey(name string, body map[string]any) (map[string]any, error) {
	if t, _ := body["type"].(string); t != "" && t != "aes256-gcm96" {
		return nil, fail(http.StatusBadRequest, "unsupported key type %q in this test server", t)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys[name] == nil {
		derived, _ := body["derived"].(bool)
		k := &key{derived: derived, minDec: 1}
		k.addVersion()
		s.keys[name] = k
	}
	return nil, nil
}

func (k *key) addVersion() {
	b := make([]byte, 32)
	rand.Read(b)
	k.versions = append(k.versions, b)
	k.created = append(k.created, time.Now())
}

func (s *Server) rotate(name string) (map[string]any, error) {
	s.mu.Lock()
	k := s.keys[name]
	if k == nil {
		s.mu.Unlock()
		return nil, fail(http.StatusBadRequest, "key not found")
	}
	k.addVersion()
	s.mu.Unlock()
	return s.readKey(name)
}

func (s *Server) config(name string, body map[string]any) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[name]
	if k == nil {
		return nil, fail(http.StatusBadRequest, "key not found")
	}
	if v, ok := body["min_decryption_version"]; ok {
		n, err := intOf(v)
		if err != nil || n < 1 || n > len(k.versions) {
			return nil, fail(http.StatusBadRequest, "invalid min_decryption_version")
		}
		k.minDec = n
	}
	return nil, nil
}

// batch runs one operation, or each item of batch_input.
func (s *Server) batch(op, name string, body map[string]any) (map[string]any, error) {
	in, isBatch := body["batch_input"].([]any)
	if !isBatch {
		s.Requests.Add(1)
		res, err := s.one(op, name, body)
		if err != nil {
			return nil, err
		}
		return res, nil
	}
	out := make([]map[string]any, len(in))
	for i, item := range in {
		s.Requests.Add(1)
		m, _ := item.(map[string]any)
		res, err := s.one(op, name, m)
		if err != nil {
			res = map[string]any{"error": err.Error()}
		}
		out[i] = res
	}
	return map[string]any{"batch_results": out}, nil
}

func (s *Server) one(op, name string, in map[string]any) (map[string]any, error) {
	s.mu.Lock()
	k := s.keys[name]
	s.mu.Unlock()
	if k == nil {
		return nil, fail(http.StatusBadRequest, "encryption key not found")
	}
	ctxBytes, err := b64Field(in, "context")
	if err != nil {
		return nil, err
	}
	if k.derived && len(ctxBytes) == 0 {
		return nil, fail(http.StatusBadRequest, "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key")
	}
	switch op {
	case "encrypt":
		pt, err := b64Field(in, "plaintext")
		if err != nil {
			return nil, err
		}
		return s.encrypt(k, in, ctxBytes, pt)
	case "decrypt":
		pt, _, err := s.decrypt(k, in, ctxBytes)
		if err != nil {
			return nil, err
		}
		return map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)}, nil
	default: // rewrap
		pt, _, err := s.decrypt(k, in, ctxBytes)
		if err != nil {
			return nil, err
		}
		return s.encrypt(k, in, ctxBytes, pt)
	}
}

func (s *Server) encrypt(k *key, in map[string]any, ctxBytes, pt []byte) (map[string]any, error) {
	s.mu.Lock()
	ver := len(k.versions)
	if v, ok := in["key_version"]; ok {
		if n, err := intOf(v); err == nil && n > 0 {
			ver = n
		}
	}
	if ver > len(k.versions) || ver < k.minDec {
		s.mu.Unlock()
		return nil, fail(http.StatusBadRequest, "requested version for encryption is not valid")
	}
	aead, err := k.aead(ver, ctxBytes)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	ct := aead.Seal(nonce, nonce, pt, nil)
	return map[string]any{"ciphertext": "vault:v" + strconv.Itoa(ver) + ":" + base64.StdEncoding.EncodeToString(ct), "key_version": ver}, nil
}

func (s *Server) decrypt(k *key, in map[string]any, ctxBytes []byte) ([]byte, int, error) {
	c, _ := in["ciphertext"].(string)
	rest, ok := strings.CutPrefix(c, "vault:v")
	verStr, b64, ok2 := strings.Cut(rest, ":")
	ver, err := strconv.Atoi(verStr)
	if !ok || !ok2 || err != nil || ver < 1 {
		return nil, 0, fail(http.StatusBadRequest, "invalid ciphertext: no prefix")
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, 0, fail(http.StatusBadRequest, "invalid ciphertext: could not decode base64")
	}
	s.mu.Lock()
	if ver > len(k.versions) {
		s.mu.Unlock()
		return nil, 0, fail(http.StatusBadRequest, "invalid ciphertext: key version is newer than the latest")
	}
	if ver < k.minDec {
		s.mu.Unlock()
		return nil, 0, fail(http.StatusBadRequest, "ciphertext or signature version is disallowed by policy (too old)")
	}
	aead, err := k.aead(ver, ctxBytes)
	s.mu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	if len(raw) < aead.NonceSize() {
		return nil, 0, fail(http.StatusBadRequest, "invalid ciphertext: too short")
	}
	pt, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], nil)
	if err != nil {
		return nil, 0, fail(http.StatusBadRequest, "cipher: message authentication failed")
	}
	return pt, ver, nil
}

// aead is the version's cipher, or its per-context derived key's.
func (k *key) aead(ver int, ctxBytes []byte) (cipher.AEAD, error) {
	kb := k.versions[ver-1]
	if k.derived {
		d, err := hkdf.Key(sha256.New, kb, nil, string(ctxBytes), 32)
		if err != nil {
			return nil, err
		}
		kb = d
	}
	block, err := aes.NewCipher(kb)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func b64Field(in map[string]any, name string) ([]byte, error) {
	v, _ := in[name].(string)
	if v == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "failed to base64-decode %s", name)
	}
	return b, nil
}

func intOf(v any) (int, error) {
	switch n := v.(type) {
	case float64:
		return int(n), nil
	case json.Number:
		i, err := n.Int64()
		return int(i), err
	case string:
		return strconv.Atoi(n)
	}
	return 0, fmt.Errorf("not a number")
}
