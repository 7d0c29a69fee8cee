package config

import (
	"errors"
	"net/url"
	"strconv"
	"time"
)

// Documents are the settings of Binary content storage (issue #28, see
// docs/documents.md).
type Documents struct {
	// Backend is "file" (under Dir) or "s3".
	Backend string
	// Dir holds the sealed objects of the file backend ("" : <data>/documents).
	Dir string
	// S3 names the bucket of the s3 backend.
	S3Endpoint, S3Region, S3Bucket, S3Prefix string
	S3PathStyle                              bool
	S3AccessKey, S3SecretKey                 string
	// S3LockMode (GOVERNANCE or COMPLIANCE; empty: none) writes every
	// object with object lock retention of S3LockDays days.
	S3LockMode string
	S3LockDays int64
	// MaxBytes bounds one upload; InlineMax the content a FHIR read of a
	// Binary carries as data; AttachmentMax the inline Attachment.data
	// kept in a resource (larger is moved to a Binary).
	MaxBytes, InlineMax, AttachmentMax int64
	// SweepEvery is how often ward serve removes stray objects; SweepGrace
	// how old an object must be to be looked at.
	SweepEvery, SweepGrace time.Duration
	// MaxStreams bounds the content streams open at once (downloads and
	// inline reads); more wait for a free one.
	MaxStreams int64
}

func documentDefaults() Documents {
	return Documents{Backend: "file", S3Region: "us-east-1", MaxBytes: 4 << 30, InlineMax: 1 << 20, AttachmentMax: 64 << 10,
		SweepEvery: 10 * time.Minute, SweepGrace: time.Hour, MaxStreams: 256, S3LockDays: 1}
}

func int64Setting(env, flag, doc string, lo, hi int64, field func(*Config) *int64) setting {
	return setting{env: env, flag: flag, doc: doc,
		get: func(c *Config) string { return strconv.FormatInt(*field(c), 10) },
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < lo || n > hi {
				return errors.New("must be an integer between " + strconv.FormatInt(lo, 10) + " and " + strconv.FormatInt(hi, 10))
			}
			*field(c) = n
			return nil
		}}
}

func stringSetting(env, flag, doc string, secret bool, field func(*Config) *string, check func(string) error) setting {
	return setting{env: env, flag: flag, doc: doc, secret: secret,
		get: func(c *Config) string { return *field(c) },
		set: func(c *Config, v string) error {
			if check != nil {
				if err := check(v); err != nil {
					return err
				}
			}
			*field(c) = v
			return nil
		}}
}

var documentSettings = []setting{
	stringSetting("WARD_DOCUMENTS_BACKEND", "documents-backend", "where Binary content is kept: file (under the data directory) or s3", false,
		func(c *Config) *string { return &c.Documents.Backend }, func(v string) error {
			if v != "file" && v != "s3" {
				return errors.New("must be file or s3")
			}
			return nil
		}),
	stringSetting("WARD_DOCUMENTS_DIR", "documents-dir", "directory of the file backend (empty: <data dir>/documents)", false,
		func(c *Config) *string { return &c.Documents.Dir }, nil),
	stringSetting("WARD_DOCUMENTS_S3_ENDPOINT", "documents-s3-endpoint", "URL of the S3-compatible service (empty: AWS)", false,
		func(c *Config) *string { return &c.Documents.S3Endpoint }, func(v string) error {
			if v == "" {
				return nil
			}
			if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errors.New("must be an http:// or https:// URL")
			}
			return nil
		}),
	stringSetting("WARD_DOCUMENTS_S3_REGION", "documents-s3-region", "region of the bucket", false,
		func(c *Config) *string { return &c.Documents.S3Region }, nil),
	stringSetting("WARD_DOCUMENTS_S3_BUCKET", "documents-s3-bucket", "bucket of the s3 backend", false,
		func(c *Config) *string { return &c.Documents.S3Bucket }, nil),
	stringSetting("WARD_DOCUMENTS_S3_PREFIX", "documents-s3-prefix", "key prefix in the bucket (ending in /; empty: none)", false,
		func(c *Config) *string { return &c.Documents.S3Prefix }, func(v string) error {
			if v != "" && v[len(v)-1] != '/' {
				return errors.New("must end in /")
			}
			return nil
		}),
	{env: "WARD_DOCUMENTS_S3_PATH_STYLE", flag: "documents-s3-path-style", doc: "address the bucket in the URL path (most self-hosted services): true or false",
		get: func(c *Config) string { return strconv.FormatBool(c.Documents.S3PathStyle) }, set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("must be true or false")
			}
			c.Documents.S3PathStyle = b
			return nil
		}},
	stringSetting("WARD_DOCUMENTS_S3_ACCESS_KEY", "documents-s3-access-key", "access key id of the s3 backend", true,
		func(c *Config) *string { return &c.Documents.S3AccessKey }, nil),
	stringSetting("WARD_DOCUMENTS_S3_SECRET_KEY", "documents-s3-secret-key", "secret access key of the s3 backend", true,
		func(c *Config) *string { return &c.Documents.S3SecretKey }, nil),
	stringSetting("WARD_S3_OBJECT_LOCK_MODE", "s3-object-lock-mode", "object lock retention of every content object on the s3 backend: GOVERNANCE or COMPLIANCE (empty: none; the bucket must have object lock enabled)", false,
		func(c *Config) *string { return &c.Documents.S3LockMode }, func(v string) error {
			if v != "" && v != "GOVERNANCE" && v != "COMPLIANCE" {
				return errors.New("must be GOVERNANCE, COMPLIANCE or empty")
			}
			return nil
		}),
	int64Setting("WARD_S3_OBJECT_LOCK_DAYS", "s3-object-lock-days", "days each content object is retained under WARD_S3_OBJECT_LOCK_MODE", 1, 36500,
		func(c *Config) *int64 { return &c.Documents.S3LockDays }),
	int64Setting("WARD_BINARY_MAX_BYTES", "binary-max-bytes", "largest Binary content accepted in one raw upload, in bytes", 1024, 1<<40,
		func(c *Config) *int64 { return &c.Documents.MaxBytes }),
	int64Setting("WARD_BINARY_INLINE_MAX", "binary-inline-max", "largest Binary content a FHIR JSON read carries as data (larger: the resource points to the content)", 0, 16<<20,
		func(c *Config) *int64 { return &c.Documents.InlineMax }),
	int64Setting("WARD_ATTACHMENT_INLINE_MAX", "attachment-inline-max", "largest inline Attachment.data kept in a resource; larger is moved to a Binary on write (-1: never)", -1, 16<<20,
		func(c *Config) *int64 { return &c.Documents.AttachmentMax }),
	durationSetting("WARD_DOCUMENTS_SWEEP_EVERY", "documents-sweep-every", "how often ward serve removes stray content objects", time.Second, 24*time.Hour,
		func(c *Config) *time.Duration { return &c.Documents.SweepEvery }),
	durationSetting("WARD_DOCUMENTS_SWEEP_GRACE", "documents-sweep-grace", "age an unreferenced content object must reach before the sweeper removes it", time.Second, 30*24*time.Hour,
		func(c *Config) *time.Duration { return &c.Documents.SweepGrace }),
	int64Setting("WARD_DOCUMENTS_MAX_STREAMS", "documents-max-streams", "content streams (downloads) decrypting at once; more wait for a free one, so memory stays flat under many concurrent downloads", 1, 1<<16,
		func(c *Config) *int64 { return &c.Documents.MaxStreams }),
}

func init() { settings = append(settings, documentSettings...) }
