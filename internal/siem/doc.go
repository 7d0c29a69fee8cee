// Package siem streams the audit ledger to a SIEM: as RFC 5424 syslog
// messages over TCP (octet-counting framing, RFC 6587), over TLS or, on
// loopback only, plain TCP; and as JSON lines POSTed in batches over
// HTTPS.
//
// Guarantees:
//   - At least once, in sequence order, from a persisted cursor: the
//     Exporter saves the cursor (the last seq delivered) only after the
//     sink acknowledged the batch, so a restart or a failed delivery
//     resends from the first record not acknowledged. A record is never
//     skipped; a record may be delivered twice (a batch whose
//     acknowledgement was lost), and receivers de-duplicate by seq, which
//     every message carries. "Acknowledged" means a 2xx for HTTP, and for
//     syslog a flushed write on a TCP (or TLS) connection: RFC 6587 has no
//     application acknowledgement, so records a receiver loses after
//     TCP accepted them are not resent (docs/siem.md).
//   - Ids and codes only: a message carries the fields of audit.Record
//     (which by construction holds no PHI: ids, codes and references),
//     each escaped for its format, never anything read from a resource.
//   - No I/O beyond the sinks' own connections: the ledger and the cursor
//     are interfaces that internal/app implements over the store.
package siem
