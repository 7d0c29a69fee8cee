package fhir

// OperationOutcome returns an OperationOutcome resource listing issues:
//
//	{"resourceType":"OperationOutcome","issue":[{"severity":..,"code":..,"diagnostics":..,"expression":[..]}]}
//
// Empty Diagnostics and Expression are omitted. An issue without a severity
// is written as "error" and one without a code as "processing", because R4
// requires both. With no issues the outcome holds one "information" issue
// (code "informational"), because R4 requires at least one.
func OperationOutcome(issues ...Issue) []byte {
	if len(issues) == 0 {
		issues = []Issue{{Severity: SeverityInformation, Code: "informational", Diagnostics: "no issues"}}
	}
	n := 64
	for _, is := range issues {
		n += 64 + len(is.Diagnostics) + len(is.Expression)
	}
	b := make([]byte, 0, n)
	b = append(b, `{"resourceType":"OperationOutcome","issue":[`...)
	for i, is := range issues {
		if i > 0 {
			b = append(b, ',')
		}
		sev, code := is.Severity, is.Code
		if sev == "" {
			sev = SeverityError
		}
		if code == "" {
			code = "processing"
		}
		b = append(b, `{"severity":`...)
		b = appendString(b, sev)
		b = append(b, `,"code":`...)
		b = appendString(b, code)
		if is.Diagnostics != "" {
			b = append(b, `,"diagnostics":`...)
			b = appendString(b, is.Diagnostics)
		}
		if is.Expression != "" {
			b = append(b, `,"expression":[`...)
			b = appendString(b, is.Expression)
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}
