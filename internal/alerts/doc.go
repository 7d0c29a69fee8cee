// Package alerts is Ward's rule engine over the audit ledger: it reads
// ledger records in sequence order and emits alerts (reads per user per
// hour above a threshold, access outside configured hours, access to
// patients flagged VIP or employee, repeated refusals, break-glass use,
// bulk export, logins from new addresses, a user reading a patient who
// shares their family name).
//
// Guarantees:
//   - Pure: Engine.Process is a function of the rules, the record, the
//     State and the Facts it is given; no I/O, no clock. The caller
//     (internal/app) reads the ledger incrementally from a persisted
//     cursor (the last seq processed), never rescans it, and commits the
//     alerts as ledger records together with the new cursor and State in
//     one transaction, so that a restart neither loses nor repeats an
//     alert.
//   - State holds ids, keyed hashes and counters only, never PHI, and is
//     bounded: per-window counters are dropped when their window passes,
//     remembered addresses are capped per user.
//   - Alerts are derived from ledger records alone (plus the Facts:
//     security labels and family-name blind indexes, both keyed or coded,
//     never plaintext). Records of action "alert" are never themselves
//     the input of a rule.
//   - Rules are parsed strictly (unknown fields, unknown kinds and bad
//     values are refused with a message naming the rule and field, never
//     echoing the value).
package alerts
