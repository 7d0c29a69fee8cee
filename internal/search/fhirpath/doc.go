// Package fhirpath evaluates the part of FHIRPath that the FHIR R4 search
// parameters are written in, over resources decoded as fhir.Parse decodes
// them (map[string]any with json.Number numbers).
//
// Supported: member navigation with array flattening and R4 choice elements
// (Observation.value finds valueQuantity, valueString, ...; only names that
// are choice elements in R4 are resolved that way); a leading type name
// (Patient.name, Resource.id); the operators | (with duplicate removal), =,
// !=, and, or, xor, implies, is and as; [n] with an integer literal;
// parentheses; string, number and boolean literals and {}; $this, %resource,
// %rootResource and %context; the functions where, exists, empty, not,
// first, last, tail, count, hasValue, resolve, ofType, as, is and
// extension('url').
//
// What it guarantees:
//
//   - Compile accepts every expression of the R4 search parameter table (each
//     base's branch, and every composite component), and rejects anything
//     outside the subset with a *SyntaxError naming the byte offset, rather
//     than evaluating it wrongly. It never panics (fuzzed).
//   - Evaluation does no I/O. resolve() decides a reference's target type
//     from the reference itself (Patient/1, an absolute URL ending in
//     Patient/1, a conditional Patient?identifier=..., or Reference.type) and
//     looks up #id in the resource's contained list; a reference to another
//     resource resolves to a Value with a nil Node and that Type, enough for
//     "resolve() is Patient" but not for navigating into the target.
//   - Errors from evaluation (*EvalError) name operators and counts, never
//     values read from the resource, which may be PHI.
//   - An *Expr is immutable and safe for concurrent use; evaluation reuses
//     pooled working storage, so AppendEval with a reused slice does not
//     allocate for search parameter expressions.
//
// Known departures from FHIRPath, all irrelevant to search indexing: types
// are known only from choice keys, resourceType and resolve() (Patient.gender
// is a string, not a code); as filters a collection of several items where
// FHIRPath would fail (is still requires one item); dates and times compare as
// strings; primitive extensions (_birthDate) are not visible; arithmetic,
// comparison (<, >), string functions and date literals are not supported.
package fhirpath
