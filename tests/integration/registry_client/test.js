// A real registry client (@kafkajs/confluent-schema-registry) against datamesh:
// registers, looks up, encodes and decodes, and sees compatibility errors.
const { SchemaRegistry, SchemaType } = require('@kafkajs/confluent-schema-registry');

const host = process.env.DATAMESH_SERVER;
// With `datamesh up --auth`: basic auth with the API token as password, as
// Confluent clients send basic.auth.user.info.
const token = process.env.DATAMESH_REGISTRY_TOKEN;
let passed = 0, failed = 0;
function check(name, cond, detail) {
  if (cond) { passed++; console.log(`ok   ${name}`); }
  else { failed++; console.log(`FAIL ${name}${detail ? ': ' + detail : ''}`); }
}

(async () => {
  const registry = new SchemaRegistry(
    token ? { host, auth: { username: 'datamesh', password: token } } : { host });
  const v1 = {
    type: 'record', name: 'Play', namespace: 'demo',
    fields: [{ name: 'id', type: 'long' }, { name: 'country', type: 'string' }],
  };
  const { id } = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(v1) },
                                         { subject: 'plays-value' });
  check('register returns an id', Number.isInteger(id) && id > 0, id);
  const again = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(v1) },
                                        { subject: 'plays-value' });
  check('same schema, same id', again.id === id);
  const found = await registry.getRegistryId('plays-value', 1);
  check('id by subject and version', found === id);
  const latest = await registry.getLatestSchemaId('plays-value');
  check('latest id', latest === id);
  const encoded = await registry.encode(id, { id: 42, country: 'US' });
  check('wire format header', encoded[0] === 0 && encoded.readInt32BE(1) === id);
  const decoded = await registry.decode(encoded);
  check('decode round trip', decoded.id === 42 && decoded.country === 'US', JSON.stringify(decoded));
  const schema = await registry.getSchema(id);
  check('schema by id', schema && /Play$/.test(schema.name), schema && schema.name);

  // A backward-compatible evolution gets a new id; an incompatible one is refused.
  const v2 = { ...v1, fields: [...v1.fields, { name: 'device', type: ['null', 'string'], default: null }] };
  const r2 = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(v2) },
                                     { subject: 'plays-value' });
  check('compatible evolution', r2.id !== id);
  const bad = { ...v1, fields: [...v1.fields, { name: 'amount', type: 'double' }] };
  try {
    await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(bad) },
                            { subject: 'plays-value' });
    check('incompatible refused', false, 'registered');
  } catch (e) {
    check('incompatible refused', /incompatible/i.test(String(e.message)), e.message);
  }
  try {
    await registry.getSchema(987654);
    check('unknown id refused', false);
  } catch (e) {
    check('unknown id refused', /not found/i.test(String(e.message)), e.message);
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})().catch((e) => { console.log(`FAIL unexpected: ${e.stack || e}`); console.log(`${passed} passed, ${failed + 1} failed`); process.exit(1); });
