// Package shape trims FHIR R4 (4.0.1) resources for the _summary and
// _elements search parameters (search.html#summary, search.html#elements).
//
// What the package guarantees:
//
//   - The input map is never modified. Except for _summary=false (or empty),
//     which returns the very map it was given, the result is a fresh deep
//     copy: it shares no map or slice with the input, so the caller may change
//     either freely.
//   - resourceType, id and meta are always kept. Every mode that may remove
//     something (_summary=true, text, data, and _elements) adds the tag
//     {system: http://terminology.hl7.org/CodeSystem/v3-ObservationValue,
//     code: SUBSETTED} to meta.tag exactly once: an existing tag with that
//     system and code is not repeated.
//   - Top-level elements with minimum cardinality 1 or more are kept by every
//     mode, as the specification asks servers to do.
//   - A primitive's extension sibling ("_birthDate") goes with its element.
//   - Errors name no value read from the resource (values may be PHI); an
//     unknown resource type or mode is quoted only if it looks like a name.
//
// The rules, from the R4 specification:
//
//   - _summary=true keeps the elements whose StructureDefinition has
//     isSummary=true or min >= 1. The filter applies to the resource's own
//     top-level elements and, recursively, to its backbone elements (e.g.
//     Observation.component keeps code and value[x] but drops
//     interpretation). A data type value whose element is kept is kept
//     whole, except Attachment.data: ElementDefinition.isSummary says
//     "Other than Attachment.data, all data type properties are included in
//     the summary form", so the data types' own isSummary flags (which mark,
//     for instance, Extension.value[x] as not in the summary) are not used.
//     Resources nested inside a kept element (Bundle.entry.resource,
//     Parameters.parameter.resource) are copied whole. JSON properties that
//     are not R4 elements of the type are dropped.
//   - _summary=text keeps resourceType, id, meta, text and the mandatory
//     top-level elements.
//   - _summary=data drops the top-level text element and nothing else.
//   - _summary=count is not a shaping mode (the search answers it without
//     resources) and is rejected like an unknown mode.
//   - _elements keeps the named top-level elements. A choice element is named
//     by its base name ("value" keeps valueQuantity or valueString) or by one
//     full variant name ("valueQuantity" keeps only that variant). Names that
//     are not elements of the type are ignored; ValidElement lets a strict
//     caller reject them first. Names are used as given (no trimming, no
//     "Patient.name" paths).
//
// The element table is generated from the HL7 StructureDefinitions and
// embedded (see README.md). It holds only elements that are also in the
// project's R4 JSON schema, so shaping never knows an element the validator
// rejects, and the vendor and R5 additions of the source files are left out.
package shape
