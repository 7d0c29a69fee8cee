package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Config names an S3-compatible bucket.
type S3Config struct {
	// Endpoint is the service URL (empty: AWS for Region).
	Endpoint string
	Region   string
	Bucket   string
	// Prefix is put before every key (empty: none); it must end in "/".
	Prefix string
	// PathStyle addresses the bucket in the path (most self-hosted
	// services) rather than the host name.
	PathStyle bool
	// AccessKey and SecretKey; empty: the SDK's default chain is not
	// consulted, anonymous requests are refused by the service.
	AccessKey, SecretKey string
	// PartSize bounds the memory of one upload: Concurrency parts of
	// PartSize bytes are buffered at most (0: 8 MiB, 2).
	PartSize    int64
	Concurrency int
	// LockMode, when set (GOVERNANCE or COMPLIANCE), writes every object
	// with that object lock retention for LockDays days; the bucket must
	// have object lock enabled (CheckObjectLock).
	LockMode string
	LockDays int
}

// S3 keeps objects in an S3-compatible bucket. Put streams through
// multipart uploads whose parts are buffered one at a time per worker,
// so memory is bounded whatever the object's size; a failed upload is
// aborted, and CleanTemp aborts the ones a dead process left.
type S3 struct {
	c   *s3.Client
	up  *manager.Uploader
	cfg S3Config
}

var _ Store = (*S3)(nil)

// NewS3 returns an S3 store; it does not contact the service.
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("blob: S3 bucket is required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = 8 << 20
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 2
	}
	switch cfg.LockMode {
	case "":
	case "GOVERNANCE", "COMPLIANCE":
		if cfg.LockDays < 1 {
			return nil, errors.New("blob: object lock needs a retention of at least one day")
		}
	default:
		return nil, errors.New("blob: object lock mode must be GOVERNANCE or COMPLIANCE")
	}
	o := s3.Options{
		Region:       cfg.Region,
		UsePathStyle: cfg.PathStyle,
		Credentials:  credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
		// Checksums only when the operation requires one: many
		// S3-compatible services refuse the newer trailing checksums.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if cfg.Endpoint != "" {
		o.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	c := s3.New(o)
	up := manager.NewUploader(c, func(u *manager.Uploader) {
		u.PartSize = cfg.PartSize
		u.Concurrency = cfg.Concurrency
	})
	return &S3{c: c, up: up, cfg: cfg}, nil
}

func (s *S3) key(key string) (*string, error) {
	if !ValidKey(key) {
		return nil, ErrInvalidKey
	}
	return aws.String(s.cfg.Prefix + key), nil
}

// Put uploads r; an upload that fails is aborted (no parts left).
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	k, err := s.key(key)
	if err != nil {
		return 0, err
	}
	cr := &countReader{r: r}
	in := &s3.PutObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: k, Body: cr}
	if s.cfg.LockMode != "" {
		// The uploader carries these to PutObject or, for a multipart
		// upload, CreateMultipartUpload.
		in.ObjectLockMode = types.ObjectLockMode(s.cfg.LockMode)
		in.ObjectLockRetainUntilDate = aws.Time(time.Now().Add(time.Duration(s.cfg.LockDays) * 24 * time.Hour))
	}
	if _, err := s.up.Upload(ctx, in); err != nil {
		return cr.n, fmt.Errorf("blob: s3 upload: %w", err)
	}
	return cr.n, nil
}

// Open gets the object from off.
func (s *S3) Open(ctx context.Context, key string, off int64) (io.ReadCloser, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: k}
	if off > 0 {
		in.Range = aws.String("bytes=" + strconv.FormatInt(off, 10) + "-")
	}
	out, err := s.c.GetObject(ctx, in)
	if err != nil {
		if notFound(err) {
			return nil, ErrNotFound
		}
		var ae smithy.APIError
		if off > 0 && errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
			return io.NopCloser(strings.NewReader("")), nil // at or past the end
		}
		return nil, fmt.Errorf("blob: s3 get: %w", err)
	}
	return out.Body, nil
}

func notFound(err error) bool {
	var nk *types.NoSuchKey
	var ae smithy.APIError
	return errors.As(err, &nk) || errors.As(err, &ae) && (ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchKey")
}

// Delete removes the object (S3 deletes are idempotent: the object is
// looked up first so that a missing one is ErrNotFound).
func (s *S3) Delete(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	if _, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: k}); err != nil {
		if notFound(err) {
			return ErrNotFound
		}
		return fmt.Errorf("blob: s3 head: %w", err)
	}
	if _, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: k}); err != nil {
		if s.cfg.LockMode != "" && locked(err) {
			return fmt.Errorf("%w: %v", ErrLocked, err)
		}
		return fmt.Errorf("blob: s3 delete: %w", err)
	}
	return nil
}

// locked reports whether a delete was refused, as S3 refuses the delete
// of an object under retention (AccessDenied; some services say
// ObjectLocked).
func locked(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "AccessDenied" || ae.ErrorCode() == "ObjectLocked")
}

// CheckObjectLock fails unless the bucket has object lock enabled, so a
// Ward configured to lock its objects never runs against a bucket that
// would silently keep them unlocked. Without LockMode it checks nothing.
func (s *S3) CheckObjectLock(ctx context.Context) error {
	if s.cfg.LockMode == "" {
		return nil
	}
	out, err := s.c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(s.cfg.Bucket)})
	if err != nil {
		return fmt.Errorf("blob: object lock is configured but the bucket's object lock configuration could not be read: %w", err)
	}
	if out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return errors.New("blob: object lock is configured but the bucket does not have object lock enabled")
	}
	return nil
}

// List pages through ListObjectsV2.
func (s *S3) List(ctx context.Context, prefix string, fn func(Object) error) error {
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(s.cfg.Prefix + prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("blob: s3 list: %w", err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)[len(s.cfg.Prefix):]
			if err := fn(Object{Key: key, Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// CleanTemp aborts multipart uploads under the prefix started before
// cutoff.
func (s *S3) CleanTemp(ctx context.Context, cutoff time.Time) (int, error) {
	out, err := s.c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(s.cfg.Prefix)})
	if err != nil {
		return 0, fmt.Errorf("blob: s3 list uploads: %w", err)
	}
	n := 0
	for _, u := range out.Uploads {
		if u.Initiated == nil || !u.Initiated.Before(cutoff) {
			continue
		}
		if _, err := s.c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(s.cfg.Bucket), Key: u.Key, UploadId: u.UploadId}); err == nil {
			n++
		}
	}
	return n, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
