#!/usr/bin/env node
// Byte vectors for the js Hivemind peer (hivemind-lib.mjs): its encoders must reproduce these
// bytes exactly, which checks the js side independently of our C code. The bytes were derived
// from the rules in the Hivemind sources named on each vector (learning-at-home/hivemind
// @ 4bd43b7), with a separate re-implementation (msgpack-python's use_bin_type=True rules plus
// hivemind's ext hooks, a protobuf encoder, SHA-1), and are copied here verbatim.
//
//   node tests/interop/hivemind-vectors.mjs          prints one line per vector, exit 1 on a mismatch
import {
  pb, encodePb, decodePb, mpEncode, mpDecode, dhtId, F64, Tuple, DictValue, BatchTensorDescriptor, Raw,
  encodeCall, encodeResponse, encodeError, decodeEnvelope, encodeFrame, encodeErrorFrame, END_OF_STREAM,
  FOUND_DICTIONARY
} from './hivemind-lib.mjs'

let failed = 0
function check (name, got, wantHex) {
  const g = Buffer.from(got).toString('hex')
  if (g === wantHex) { console.log(`ok   ${name}`); return }
  failed++
  console.log(`FAIL ${name}\n  want ${wantHex}\n  got  ${g}`)
}
const H = (s) => Buffer.from(s, 'hex')

// hivemind/dht/routing.py DHTID.generate: SHA-1 of msgpack(key) (str8 header d9 for 32+ bytes),
// of the raw bytes for a bytes key.
for (const [k, m, id] of [
  ['_petals.models', 'ae5f706574616c732e6d6f64656c73', '0a63ed21831f3f7d24f07949cea69a94476b4faf'],
  ['Meta-Llama-3-1-405B-Instruct-hf.0', 'd9214d6574612d4c6c616d612d332d312d343035422d496e7374727563742d68662e30', '9b14d861b958d4bf27a484d3361000dfb86d791f'],
  ['ffn.3.7', 'a766666e2e332e37', '6edf9575340a80d07e829b7765c07af86135d423'],
  ['abc', 'a3616263', '509d4b810521ab3990c77e3b9a4600e0ba51d1ef']
]) {
  check(`msgpack(${k})`, mpEncode(k), m)
  check(`DHTID(${k})`, dhtId(k), id)
}
check("DHTID(b'abc') hashes the raw bytes", dhtId(Buffer.from('abc')), 'a9993e364706816aba3e25717850c26c9cd0d89d')

// Petals subkey = msgpack str of the base58 PeerID (petals/server/server.py declare_active_modules).
const PEER_B58 = '12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB'
const PEER_BYTES = H('00240801122003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8')
check('subkey msgpack(peer id str)', mpEncode(PEER_B58),
  'd934313244334b6f6f574134586f70314a6154334d487877594d6b436570597376346950566f704d5877437a35694859644266655342')

// hivemind/utils/serializer.py: tuple -> ExtType(0x40, packb(list)); floats always float64.
// ServerInfo.to_tuple() (petals/data_structures.py): (state, throughput, {extra fields}).
const serverInfo = new Tuple([2, new F64(1234.5), {
  start_block: 0,
  end_block: 2,
  public_name: 'c-node',
  version: '2.3.0.dev2',
  network_rps: new F64(1000.0),
  forward_rps: new F64(2000.0),
  inference_rps: new F64(300.0),
  adapters: new Tuple([]),
  torch_dtype: 'float16',
  quant_type: 'nf4',
  using_relay: false,
  cache_tokens_left: 65536,
  next_pings: { [PEER_B58]: new F64(0.0125) }
}])
const SERVER_INFO = 'c80129409302cb40934a00000000008dab73746172745f626c6f636b00a9656e645f626c6f636b02ab7075626c69635f6e616d65a6632d6e6f6465a776657273696f6eaa322e332e302e64657632ab6e6574776f726b5f727073cb408f400000000000ab666f72776172645f727073cb409f400000000000ad696e666572656e63655f727073cb4072c00000000000a86164617074657273d44090ab746f7263685f6474797065a7666c6f61743136aa7175616e745f74797065a36e6634ab7573696e675f72656c6179c2b163616368655f746f6b656e735f6c656674ce00010000aa6e6578745f70696e677381d934313244334b6f6f574134586f70314a6154334d487877594d6b436570597376346950566f704d5877437a35694859644266655342cb3f8999999999999a'
check('ServerInfo tuple (ext16 0x40, empty tuple fixext1 d4 40 90)', mpEncode(serverInfo), SERVER_INFO)
const back = mpDecode(H(SERVER_INFO))
check('ServerInfo decodes to a Tuple and re-encodes', mpEncode(new Tuple([back.items[0], new F64(back.items[1]), {
  ...back.items[2],
  network_rps: new F64(1000.0), forward_rps: new F64(2000.0), inference_rps: new F64(300.0),
  next_pings: { [PEER_B58]: new F64(0.0125) }
}])), SERVER_INFO)
// petals ModelInfo.to_dict()
check('ModelInfo map', mpEncode({ num_blocks: 126, repository: 'https://huggingface.co/meta-llama/Meta-Llama-3.1-405B-Instruct' }),
  '82aa6e756d5f626c6f636b737eaa7265706f7369746f7279d93e68747470733a2f2f68756767696e67666163652e636f2f6d6574612d6c6c616d612f4d6574612d4c6c616d612d332e312d343035422d496e737472756374')

// hivemind/dht/storage.py DictionaryDHTValue.packb (ext 0x50): [maxsize=+inf, latest, [[subkey, value, exp]]]
const DICT = 'c801845093cb7ff0000000000000cb41d954fc7c0000009193d934313244334b6f6f574134586f70314a6154334d487877594d6b436570597376346950566f704d5877437a35694859644266655342c5012d' + SERVER_INFO + 'cb41d954fc7c000000'
check('DictionaryDHTValue (ext16 0x50)', mpEncode(new DictValue(Infinity, 1700000240.0,
  [[PEER_B58, H(SERVER_INFO), 1700000240.0]])), DICT)
check('DictionaryDHTValue with a raw (received) subkey', mpEncode(new DictValue(Infinity, 1700000240.0,
  [[new Raw(mpEncode(PEER_B58)), H(SERVER_INFO), 1700000240.0]])), DICT)
const dv = mpDecode(H(DICT))
check('DictionaryDHTValue decodes (subkey, value, expiration)',
  Buffer.from(JSON.stringify([dv instanceof DictValue, dv.maxsize, dv.latest, dv.items[0][0], dv.items[0][2]])),
  Buffer.from(JSON.stringify([true, null, 1700000240.0, PEER_B58, 1700000240.0])).toString('hex'))

// hivemind/proto/dht.proto messages as Python writes them (proto3 defaults omitted, packed repeated).
const NODE_ID = H('f32585e1eaf96891313b1479da1501ccc4e13f42')
const KEY0 = dhtId('Meta-Llama-3-1-405B-Instruct-hf.0')
const PING_RESP = '12160a14f32585e1eaf96891313b1479da1501ccc4e13f422100001040fc54d9412801'
check('PingRequest', encodePb(pb.PingRequest, { peer: { node_id: NODE_ID }, validate: true }),
  '12160a14f32585e1eaf96891313b1479da1501ccc4e13f421801')
check('PingResponse', encodePb(pb.PingResponse, { peer: { node_id: NODE_ID }, dht_time: 1700000000.25, available: true }), PING_RESP)
check('StoreRequest', encodePb(pb.StoreRequest, {
  keys: [KEY0], subkeys: [mpEncode(PEER_B58)], values: [H(SERVER_INFO)], expiration_time: [1700000240.0], in_cache: [false], peer: { node_id: NODE_ID }
}), '12149b14d861b958d4bf27a484d3361000dfb86d791f1a36d934313244334b6f6f574134586f70314a6154334d487877594d6b436570597376346950566f704d5877437a3569485964426665534222ad02' + SERVER_INFO + '2a080000007cfc54d9413201003a160a14f32585e1eaf96891313b1479da1501ccc4e13f42')
check('StoreResponse', encodePb(pb.StoreResponse, { store_ok: [true], peer: { node_id: NODE_ID } }),
  '1201011a160a14f32585e1eaf96891313b1479da1501ccc4e13f42')
check('FindRequest', encodePb(pb.FindRequest, { keys: [KEY0], peer: { node_id: NODE_ID } }),
  '12149b14d861b958d4bf27a484d3361000dfb86d791f1a160a14f32585e1eaf96891313b1479da1501ccc4e13f42')
const FIND_RESULT = '0802128803' + DICT + '190000007cfc54d941'
check('FindResult FOUND_DICTIONARY', encodePb(pb.FindResult, { type: FOUND_DICTIONARY, value: H(DICT), expiration_time: 1700000240.0 }), FIND_RESULT)
const fr = decodePb(pb.FindResult, H(FIND_RESULT))
check('FindResult decodes', Buffer.from(`${fr.type} ${fr.expiration_time} ${fr.value.toString('hex') === DICT}`),
  Buffer.from('2 1700000240 true').toString('hex'))

// p2pd persistent_stream.go / hivemind control.py: uvarint(len) || PersistentConnectionRequest.
const CALL_ID = H('00112233445566778899aabbccddeeff')
const PING_REQ = H('12160a14f32585e1eaf96891313b1479da1501ccc4e13f421801')
const CALL = '6e0a1000112233445566778899aabbccddeeff1a5a0a2600240801122003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8121444485450726f746f636f6c2e7270635f70696e671a1a' + PING_REQ.toString('hex')
check('unary call envelope', encodeCall(CALL_ID, PEER_BYTES, 'DHTProtocol.rpc_ping', PING_REQ), CALL)
check('unary response envelope', encodeResponse(CALL_ID, H(PING_RESP)),
  '390a1000112233445566778899aabbccddeeff22250a23' + PING_RESP)
check("unary error envelope (repr: KeyError('x'))", encodeError(CALL_ID, "KeyError('x')"),
  '230a1000112233445566778899aabbccddeeff220f120d4b65794572726f722827782729')
check('unary call with empty peer and data (required fields present)',
  encodeCall(CALL_ID, Buffer.alloc(0), 'DHTProtocol.rpc_ping', Buffer.alloc(0)),
  '2e0a1000112233445566778899aabbccddeeff1a1a0a00121444485450726f746f636f6c2e7270635f70696e671a00')
const dec = decodeEnvelope(H(CALL))
check('unary call envelope decodes', Buffer.from(`${dec.used} ${dec.env.callUnary.proto} ${dec.env.callUnary.data.toString('hex')}`),
  Buffer.from(`111 DHTProtocol.rpc_ping ${PING_REQ.toString('hex')}`).toString('hex'))
// control.py / persistent_stream.go: an empty response keeps its arm: CallUnaryResponse = 0a 00
check('empty response is present (0a 00)', encodeResponse(CALL_ID, Buffer.alloc(0)), '160a1000112233445566778899aabbccddeeff22020a00')

// hivemind/p2p/p2p_daemon.py stream framing: marker || u64 BE length || protobuf.
check('end-of-stream frame', END_OF_STREAM, '010000000000000000')
check("error frame RPCError{'boom'}", encodeErrorFrame('boom'), '0100000000000000060a04626f6f6d')
check('message frame (MessageFromLeader ACCEPTED)', encodeFrame(0, H('0802')), '0000000000000000020802')

// petals args_structure: nested tuples ((b'__T0', b'__T1', b'__T2'), {}) -> ext 0x40 inside ext 0x40.
const T = (s) => Buffer.from(s)
check('nested tuples', mpEncode(new Tuple([new Tuple([T('__T0'), T('__T1'), T('__T2')]), {}])),
  'c7184092c7134093c4045f5f5430c4045f5f5431c4045f5f543280')
// hivemind/utils/tensor_descr.py BatchTensorDescriptor (ext 0x51), size = (None, 1, 2048, 4)
check('BatchTensorDescriptor (ext8 0x51)', mpEncode(new BatchTensorDescriptor({
  size: new Tuple([null, 1, 2048, 4]),
  dtype: 'torch.float16',
  layout: 'torch.strided',
  requires_grad: false,
  pin_memory: false,
  compression: 0,
  device_type: null,
  device_index: null
})), 'c77c5188a473697a65c7074094c001cd080004a56474797065ad746f7263682e666c6f61743136a66c61796f7574ad746f7263682e73747269646564ad72657175697265735f67726164c2aa70696e5f6d656d6f7279c2ab636f6d7072657373696f6e00ab6465766963655f74797065c0ac6465766963655f696e646578c0')

console.log(failed ? `hivemind-vectors: ${failed} FAILED` : 'hivemind-vectors: all vectors match')
process.exit(failed ? 1 : 0)
