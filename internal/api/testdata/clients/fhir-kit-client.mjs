// Drives Ward with fhir-kit-client, unmodified, through a base URL with a
// trailing slash. Prints one JSON object of observations for the Go test to
// check; exits non-zero on any failure.
import { Client } from 'fhir-kit-client';

async function main() {
  const [baseUrl, token] = process.argv.slice(2);
  const client = new Client({ baseUrl, customHeaders: { Authorization: `Bearer ${token}` } });
  const out = {};
  const cs = await client.capabilityStatement();
  out.capability = { resourceType: cs.resourceType, fhirVersion: cs.fhirVersion, types: cs.rest[0].resource.length };

  const created = await client.create({
    resourceType: 'Patient',
    body: { resourceType: 'Patient', name: [{ family: 'Kitclient', given: ['Fhir'] }], gender: 'other' },
  });
  out.created = { id: created.id, versionId: created.meta.versionId };

  const read = await client.read({ resourceType: 'Patient', id: created.id });
  out.read = { family: read.name[0].family };

  read.name[0].given.push('Updated');
  const updated = await client.update({
    resourceType: 'Patient', id: created.id, body: read,
    options: { headers: { 'If-Match': `W/"${read.meta.versionId}"` } },
  });
  out.updated = { versionId: updated.meta.versionId };

  let conflict = null;
  try {
    await client.update({ resourceType: 'Patient', id: created.id, body: read, options: { headers: { 'If-Match': 'W/"1"' } } });
  } catch (e) {
    conflict = e.response && e.response.status;
  }
  out.staleUpdateStatus = conflict;

  const v1 = await client.vread({ resourceType: 'Patient', id: created.id, version: '1' });
  out.vread = { versionId: v1.meta.versionId, given: v1.name[0].given.length };

  const hist = await client.history({ resourceType: 'Patient', id: created.id });
  out.history = { type: hist.type, entries: hist.entry.length };

  const search = await client.search({ resourceType: 'Patient', searchParams: { _id: created.id } });
  out.search = { type: search.type, entries: search.entry.length };

  await client.delete({ resourceType: 'Patient', id: created.id });
  let gone = null;
  try {
    await client.read({ resourceType: 'Patient', id: created.id });
  } catch (e) {
    gone = e.response && e.response.status;
  }
  out.readAfterDelete = gone;
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e && e.response ? `HTTP ${e.response.status}: ${JSON.stringify(e.response.data)}` : String(e));
  process.exit(1);
});
