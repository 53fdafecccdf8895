// Validator and selector for the /kwaai/ namespace on js kad-dht nodes (kad-node.mjs).
// PERMISSIVE PLACEHOLDER: the signed envelope is not documented in doc/net-kad.md yet, so
// `kwaaiValidate` accepts any value under /kwaai/ and `kwaaiSelect` keeps the first one.
// It is replaced by a check written from the documented format once that lands.

function namespaceOf (key) {
  const s = Buffer.from(key).toString('latin1')
  const parts = s.split('/')
  return parts.length >= 3 && parts[0] === '' ? parts[1] : undefined
}

export function permissiveValidate (key) {
  if (namespaceOf(key) !== 'kwaai') throw new Error('not a /kwaai/ key')
}
export function permissiveSelect () { return 0 }

export const kwaaiValidate = permissiveValidate
export const kwaaiSelect = permissiveSelect
