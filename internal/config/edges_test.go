package config

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestEdgeSettings(t *testing.T) {
	c := Default()
	if err := c.FromEnv([]string{"WARD_CORS_ORIGINS=https://app.example.org, http://localhost:3000", "WARD_MAX_HEADER_BYTES=8192",
		"WARD_TLS_SELF_SIGNED=true", "WARD_ALLOW_INSECURE_KEY_FILE=1"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.CORSOrigins, []string{"https://app.example.org", "http://localhost:3000"}) || c.MaxHeaderBytes != 8192 ||
		!c.TLSSelfSigned || !c.AllowInsecureKeyFile || !c.TLS() {
		t.Fatalf("%+v", c)
	}
	if Default().MaxHeaderBytes != 64<<10 || len(Default().CORSOrigins) != 0 || Default().TLS() || Default().AllowInsecureKeyFile {
		t.Fatal("defaults")
	}
	for _, bad := range []string{"*", "https://*.example.org", "https://app.example.org/", "https://app.example.org/path",
		"HTTPS://APP.EXAMPLE.ORG", "https://app.example.org:443", "http://app:80", "ftp://app", "null", "app.example.org",
		"https://user@app.example.org", "https://app.example.org?x", "https://app.example.org:99999"} {
		c := Default()
		if err := c.FromEnv([]string{"WARD_CORS_ORIGINS=" + bad}); err == nil {
			t.Errorf("origin %q accepted", bad)
		}
	}
	for _, bad := range []string{"WARD_MAX_HEADER_BYTES=100", "WARD_MAX_HEADER_BYTES=2000000", "WARD_TLS_SELF_SIGNED=maybe"} {
		c := Default()
		if err := c.FromEnv([]string{bad}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	for _, bad := range []Config{{TLSCert: "c"}, {TLSKey: "k"}, {TLSCert: "c", TLSKey: "k", TLSSelfSigned: true}} {
		if bad.CheckTLS() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if (&Config{TLSCert: "c", TLSKey: "k"}).CheckTLS() != nil {
		t.Error("cert and key refused")
	}
}

// The dangerous and development switches are bare flags.
func TestEdgeBoolFlags(t *testing.T) {
	c := Default()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Flags(fs, "tls-self-signed", "allow-insecure-key-file", "tls-cert", "tls-key")
	if err := fs.Parse([]string{"--tls-self-signed", "--allow-insecure-key-file"}); err != nil {
		t.Fatal(err)
	}
	if !c.TLSSelfSigned || !c.AllowInsecureKeyFile {
		t.Fatalf("%+v", c)
	}
	if err := fs.Parse([]string{"--tls-self-signed=false"}); err != nil || c.TLSSelfSigned {
		t.Fatalf("%v %v", err, c.TLSSelfSigned)
	}
}
