// Package blobtest gives tests a real S3-compatible bucket: the service
// named by WARD_TEST_S3 (http://access:secret@host:port, such as the
// versitygw .ci/run starts), with a new bucket per test. Without it the
// test is skipped, or fails when WARD_TEST_REQUIRE_S3 is set.
package blobtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wardhealth/ward/internal/blob"
)

var seq atomic.Int64

// S3 returns the configuration of a new, empty bucket.
func S3(t testing.TB) blob.S3Config {
	t.Helper()
	return newBucket(t, false)
}

// S3Locked returns the configuration of a new, empty bucket created with
// object lock enabled (no default retention); cleanup bypasses
// GOVERNANCE retention (COMPLIANCE objects stay until they expire).
func S3Locked(t testing.TB) blob.S3Config {
	t.Helper()
	return newBucket(t, true)
}

func newBucket(t testing.TB, lock bool) blob.S3Config {
	t.Helper()
	raw := os.Getenv("WARD_TEST_S3")
	if raw == "" {
		if os.Getenv("WARD_TEST_REQUIRE_S3") != "" {
			t.Fatal("WARD_TEST_REQUIRE_S3 is set but WARD_TEST_S3 is not")
		}
		t.Skip("WARD_TEST_S3 not set (an S3-compatible server, e.g. versitygw)")
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		t.Fatalf("WARD_TEST_S3 must be http://access:secret@host:port")
	}
	secret, _ := u.User.Password()
	cfg := blob.S3Config{Endpoint: u.Scheme + "://" + u.Host, Region: "us-east-1", PathStyle: true,
		AccessKey: u.User.Username(), SecretKey: secret,
		Bucket: fmt.Sprintf("ward-test-%d-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9, seq.Add(1))}
	c := Client(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := &s3.CreateBucketInput{Bucket: aws.String(cfg.Bucket)}
	if lock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := c.CreateBucket(ctx, in); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	t.Cleanup(func() { Empty(t, cfg, true) })
	return cfg
}

// Client is a plain S3 client of cfg's service.
func Client(cfg blob.S3Config) *s3.Client {
	return s3.New(s3.Options{Region: cfg.Region, UsePathStyle: true, BaseEndpoint: aws.String(cfg.Endpoint),
		Credentials:                credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired})
}

// Keys lists every object key in the bucket.
func Keys(t testing.TB, cfg blob.S3Config) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(Client(cfg), &s3.ListObjectsV2Input{Bucket: aws.String(cfg.Bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// ContentKeys lists the bucket's document content objects (b/...),
// leaving out what Ward keeps beside them (the shred list, shred/...).
func ContentKeys(t testing.TB, cfg blob.S3Config) []string {
	t.Helper()
	var keys []string
	for _, k := range Keys(t, cfg) {
		if strings.HasPrefix(k, "b/") {
			keys = append(keys, k)
		}
	}
	return keys
}

// Uploads counts the incomplete multipart uploads in the bucket.
func Uploads(t testing.TB, cfg blob.S3Config) int {
	t.Helper()
	out, err := Client(cfg).ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(cfg.Bucket)})
	if err != nil {
		t.Fatalf("list uploads: %v", err)
	}
	return len(out.Uploads)
}

// Empty deletes every object (and, with bucket, the bucket).
func Empty(t testing.TB, cfg blob.S3Config, bucket bool) {
	c := Client(cfg)
	ctx := context.Background()
	for _, k := range Keys(t, cfg) {
		c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(k), BypassGovernanceRetention: aws.Bool(true)})
	}
	if out, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(cfg.Bucket)}); err == nil {
		for _, u := range out.Uploads {
			c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(cfg.Bucket), Key: u.Key, UploadId: u.UploadId})
		}
	}
	if bucket {
		if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(cfg.Bucket)}); err != nil && !strings.Contains(err.Error(), "NoSuchBucket") {
			t.Logf("delete bucket %s: %v", cfg.Bucket, err)
		}
	}
}

// Get reads an object whole.
func Get(t testing.TB, c *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Put writes an object (to tamper with one).
func Put(t testing.TB, c *s3.Client, bucket, key string, b []byte) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(b)}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}
