// Package fhir holds FHIR R4 (4.0.1) resources as JSON: it parses untrusted
// request bodies, validates them against the official R4 JSON schema, writes
// them back canonically, and builds OperationOutcome, Bundle and
// CapabilityStatement documents.
//
// What the package guarantees:
//
//   - Parse accepts a body only if it is one well-formed UTF-8 JSON object
//     with no duplicate keys at any depth, nesting at most MaxDepth deep,
//     no trailing data, a resourceType naming one of the 146 R4 resource
//     types and, if present, an id matching the FHIR id format. Numbers are
//     kept as json.Number, so decimals keep their precision (1.50 stays 1.50).
//   - No error or Issue produced by this package contains a value read from
//     the input (values may be PHI). Messages name byte offsets, element
//     paths, schema-defined element names and codes only; an element name
//     read from the input is quoted only if it looks like a FHIR element name
//     (^[A-Za-z_][A-Za-z0-9_]{0,63}$).
//   - Validator checks a resource against its own type's definition in the
//     embedded schema (never the root oneOf) and reports every leaf failure as
//     an Issue with a FHIRPath-like expression, sorted and deduplicated.
//   - Marshal writes compact JSON, resourceType first, then id, then meta,
//     then the other keys sorted; numbers verbatim; no HTML escaping. For a
//     document from Parse, Parse(Marshal(doc)) gives an equal document and
//     Marshal is deterministic (fuzzed).
//   - The documents built here (OperationOutcome, Bundle,
//     CapabilityStatement) are valid JSON, resourceType first, and validate
//     against the embedded schema when given valid codes (tested).
//
// The schema is the HL7 R4 JSON schema with three mechanical changes made in
// memory before compiling (see schema/README.md): complex types are required
// to be JSON objects, xhtml to be a string, and the 146-way oneOf used for
// contained and Bundle resources dispatches on resourceType instead of trying
// every type. They make validation stricter and faster, never looser. The
// schema does not check everything FHIR forbids (invariants, choice-type
// exclusivity, cardinality inside data types, integer ranges); that needs the
// StructureDefinitions.
package fhir
