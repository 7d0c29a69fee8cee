package config

import (
	"bytes"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestFromEnv(t *testing.T) {
	cases := []struct {
		name    string
		env     []string
		wantErr string
		check   func(Config) bool
	}{
		{"defaults", nil, "", func(c Config) bool {
			return c.Addr == "127.0.0.1:8080" && c.MaxBodyBytes == 16<<20 && c.TokenTTL == 15*time.Minute
		}},
		{"addr", []string{"WARD_ADDR=0.0.0.0:9"}, "", func(c Config) bool { return c.Addr == "0.0.0.0:9" }},
		{"unknown key refused", []string{"WARD_ADRR=x"}, "unknown setting WARD_ADRR", nil},
		{"test keys ignored", []string{"WARD_TEST_POSTGRES=x"}, "", func(c Config) bool { return true }},
		{"other vars ignored", []string{"PATH=/bin", "HOME=/root"}, "", func(c Config) bool { return true }},
		{"bad body limit", []string{"WARD_MAX_BODY_BYTES=12"}, "WARD_MAX_BODY_BYTES", nil},
		{"bad ttl", []string{"WARD_TOKEN_TTL=forever"}, "WARD_TOKEN_TTL", nil},
		{"bad database url", []string{"WARD_DATABASE_URL=mysql://x"}, "postgres://", nil},
		{"base url trailing slash", []string{"WARD_BASE_URL=https://w.example/"}, "", func(c Config) bool { return c.BaseURL == "https://w.example" }},
		{"bad base url", []string{"WARD_BASE_URL=ftp://x"}, "WARD_BASE_URL", nil},
		{"bad tenant", []string{"WARD_TENANT=A B"}, "WARD_TENANT", nil},
		{"bad log level", []string{"WARD_LOG_LEVEL=loud"}, "WARD_LOG_LEVEL", nil},
		{"conditional delete cap default", nil, "", func(c Config) bool { return c.ConditionalDeleteMax == 100 }},
		{"conditional delete cap", []string{"WARD_CONDITIONAL_DELETE_MAX=7"}, "", func(c Config) bool { return c.ConditionalDeleteMax == 7 }},
		{"bad conditional delete cap", []string{"WARD_CONDITIONAL_DELETE_MAX=0"}, "WARD_CONDITIONAL_DELETE_MAX", nil},
		{"admin PHI access on by default", nil, "", func(c Config) bool { return c.AdminPHIAccess && c.CareEncounterWindow == 90*24*time.Hour }},
		{"admin PHI access off", []string{"WARD_ADMIN_PHI_ACCESS=false"}, "", func(c Config) bool { return !c.AdminPHIAccess }},
		{"bad admin PHI access", []string{"WARD_ADMIN_PHI_ACCESS=sometimes"}, "WARD_ADMIN_PHI_ACCESS", nil},
		{"encounter window", []string{"WARD_CARE_ENCOUNTER_WINDOW=720h"}, "", func(c Config) bool { return c.CareEncounterWindow == 720*time.Hour }},
		{"bad encounter window", []string{"WARD_CARE_ENCOUNTER_WINDOW=-1h"}, "WARD_CARE_ENCOUNTER_WINDOW", nil},
		{"rate limit defaults", nil, "", func(c Config) bool {
			return c.AuthRate == 10 && c.AuthBurst == 20 && c.APIRate == 200 && c.APIBurst == 400 && c.RedisURL == "" && c.RedisKeyPrefix == "ward:rl:" && len(c.TrustedProxies) == 0
		}},
		{"rate limits", []string{"WARD_AUTH_RATE_LIMIT=0.5", "WARD_AUTH_RATE_BURST=3", "WARD_API_RATE_LIMIT=0", "WARD_API_RATE_BURST=1"}, "", func(c Config) bool {
			return c.AuthRate == 0.5 && c.AuthBurst == 3 && c.APIRate == 0 && c.APIBurst == 1
		}},
		{"bad rate", []string{"WARD_AUTH_RATE_LIMIT=-1"}, "WARD_AUTH_RATE_LIMIT", nil},
		{"bad rate NaN", []string{"WARD_API_RATE_LIMIT=NaN"}, "WARD_API_RATE_LIMIT", nil},
		{"bad rate too high", []string{"WARD_API_RATE_LIMIT=2e6"}, "WARD_API_RATE_LIMIT", nil},
		{"bad burst", []string{"WARD_API_RATE_BURST=0"}, "WARD_API_RATE_BURST", nil},
		{"redis url", []string{"WARD_REDIS_URL=redis://:pw@cache:6379/2"}, "", func(c Config) bool { return c.RedisURL == "redis://:pw@cache:6379/2" }},
		{"bad redis url", []string{"WARD_REDIS_URL=http://cache"}, "WARD_REDIS_URL", nil},
		{"bad redis prefix", []string{"WARD_REDIS_KEY_PREFIX=a b"}, "WARD_REDIS_KEY_PREFIX", nil},
		{"trusted proxies", []string{"WARD_TRUSTED_PROXIES=10.0.0.0/8, 192.0.2.7,2001:db8::/32"}, "", func(c Config) bool {
			return len(c.TrustedProxies) == 3 && c.TrustedProxies[1].String() == "192.0.2.7/32" && c.TrustedProxies[2].String() == "2001:db8::/32"
		}},
		{"bad trusted proxy", []string{"WARD_TRUSTED_PROXIES=10.0.0.0/8,proxy.local"}, "WARD_TRUSTED_PROXIES", nil},
		{"single node by default", nil, "", func(c Config) bool { return c.NATSURL == "" && c.NATSPrefix == "ward" }},
		{"nats url", []string{"WARD_NATS_URL=nats://a:4222,nats://b:4222"}, "", func(c Config) bool { return c.NATSURL == "nats://a:4222,nats://b:4222" }},
		{"bad nats url", []string{"WARD_NATS_URL=http://a:4222"}, "WARD_NATS_URL", nil},
		{"nats url without host", []string{"WARD_NATS_URL=nats://"}, "WARD_NATS_URL", nil},
		{"nats prefix", []string{"WARD_NATS_PREFIX=prod.ward-1"}, "", func(c Config) bool { return c.NATSPrefix == "prod.ward-1" }},
		{"bad nats prefix", []string{"WARD_NATS_PREFIX=ward.>"}, "WARD_NATS_PREFIX", nil},
		{"empty nats prefix", []string{"WARD_NATS_PREFIX="}, "WARD_NATS_PREFIX", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			err := c.FromEnv(tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("unexpected config %+v", c)
			}
		})
	}
}

func TestFlagsOverride(t *testing.T) {
	c := Default()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.Flags(fs, "addr", "data-dir")
	if err := fs.Parse([]string{"--addr", "127.0.0.1:1", "--data-dir", "/tmp/d"}); err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:1" || c.DataDir != "/tmp/d" {
		t.Fatalf("%+v", c)
	}
	if fs.Lookup("token-ttl") != nil {
		t.Fatal("flag registered that was not asked for")
	}
}

func TestPrintMasksSecrets(t *testing.T) {
	c := Default()
	c.Key = "c2VjcmV0LWtleS1tYXRlcmlhbC1zZWNyZXQta2V5LW0="
	c.DatabaseURL = "postgres://ward:hunter2hunter2@db:5432/ward"
	c.RedisURL = "redis://:redispass123@cache:6379/0"
	c.NATSURL = "nats://bus:natsecret99@nats1:4222,nats://tok3nsecret@nats2:4222"
	var b bytes.Buffer
	c.Print(&b)
	out := b.String()
	if !strings.Contains(out, "nats1:4222") || !strings.Contains(out, "nats2:4222") {
		t.Errorf("NATS hosts should remain visible: %s", out)
	}
	for _, secret := range []string{c.Key, "hunter2hunter2", "redispass123", "natsecret99", "tok3nsecret"} {
		if strings.Contains(out, secret) {
			t.Errorf("printed config contains a secret: %s", out)
		}
	}
	if !strings.Contains(out, "db:5432") {
		t.Errorf("database host should remain visible: %s", out)
	}
}
