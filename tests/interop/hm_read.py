#!/usr/bin/env python3
"""Reads a Petals server record the C node published, with Python's standard library only.

An independent check of net/hivemind/records.c (doc/net-hivemind.md "Server records"): a
MessagePack decoder written here from the msgpack spec (no msgpack package), hivemind's
tuple (ext 0x40) and DictionaryDHTValue (ext 0x50) conventions, and the field rules of
petals' ServerInfo.from_tuple (src/petals/data_structures.py: ServerState 0..2, throughput a
float >= 0, the optional fields' types).

Input: the hex that `kwnode hivemind --hex get {prefix}.{i}` prints (a DictionaryDHTValue whose
subkeys are base58 PeerIDs) or a bare ServerInfo value. Prints one JSON line per server and
checks --expect FIELD=VALUE on the entry of --peer (or on every entry).
Exit: 0 all checks hold; 1 a record does not decode or a check fails; 2 usage.

usage: hm_read.py [--peer PEER] [--expect FIELD=VALUE ...] HEX
"""
import json
import math
import struct
import sys


class Ext:
    def __init__(self, code, data):
        self.code, self.data = code, data


class Reader:
    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        if self.i + n > len(self.b):
            raise ValueError("truncated at byte %d" % self.i)
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def u(self, n):
        return int.from_bytes(self.take(n), "big")

    def value(self):
        t = self.u(1)
        if t <= 0x7f:
            return t
        if t >= 0xe0:
            return t - 0x100
        if 0x80 <= t <= 0x8f:
            return self.map(t & 0x0f)
        if 0x90 <= t <= 0x9f:
            return [self.value() for _ in range(t & 0x0f)]
        if 0xa0 <= t <= 0xbf:
            return self.take(t & 0x1f).decode("utf-8")
        simple = {0xc0: None, 0xc2: False, 0xc3: True}
        if t in simple:
            return simple[t]
        if t in (0xc4, 0xc5, 0xc6):
            return bytes(self.take(self.u({0xc4: 1, 0xc5: 2, 0xc6: 4}[t])))
        if t in (0xc7, 0xc8, 0xc9):
            n = self.u({0xc7: 1, 0xc8: 2, 0xc9: 4}[t])
            code = struct.unpack("b", self.take(1))[0]
            return self.ext(code, self.take(n))
        if t == 0xca:
            return struct.unpack(">f", self.take(4))[0]
        if t == 0xcb:
            return struct.unpack(">d", self.take(8))[0]
        if 0xcc <= t <= 0xcf:
            return self.u(1 << (t - 0xcc))
        if 0xd0 <= t <= 0xd3:
            n = 1 << (t - 0xd0)
            return int.from_bytes(self.take(n), "big", signed=True)
        if 0xd4 <= t <= 0xd8:
            code = struct.unpack("b", self.take(1))[0]
            return self.ext(code, self.take(1 << (t - 0xd4)))
        if t in (0xd9, 0xda, 0xdb):
            return self.take(self.u({0xd9: 1, 0xda: 2, 0xdb: 4}[t])).decode("utf-8")
        if t in (0xdc, 0xdd):
            return [self.value() for _ in range(self.u(2 if t == 0xdc else 4))]
        if t in (0xde, 0xdf):
            return self.map(self.u(2 if t == 0xde else 4))
        raise ValueError("reserved byte 0x%02x" % t)

    def map(self, n):
        out = {}
        for _ in range(n):
            k = self.value()
            if not isinstance(k, (str, bytes)):   # msgpack-python strict_map_key
                raise ValueError("map key %r is not str or bytes" % (k,))
            out[k] = self.value()
        return out

    def ext(self, code, data):
        if code in (0x40, 0x50):
            v = loads(bytes(data))
            if code == 0x40:
                return tuple(v)
            return ("DictionaryDHTValue", v)
        return Ext(code, bytes(data))


def loads(b):
    r = Reader(b)
    v = r.value()
    if r.i != len(b):
        raise ValueError("%d trailing bytes" % (len(b) - r.i))
    return v


FIELDS = {  # petals ServerInfo's optional fields and their types
    "start_block": int, "end_block": int, "public_name": str, "version": str,
    "network_rps": float, "forward_rps": float, "inference_rps": float,
    "torch_dtype": str, "quant_type": str, "using_relay": bool, "cache_tokens_left": int,
}
STATES = {0: "OFFLINE", 1: "JOINING", 2: "ONLINE"}


def server_info(v):
    """ServerInfo.from_tuple's checks; returns a dict of the fields."""
    if not isinstance(v, (tuple, list)) or len(v) < 2:
        raise ValueError("ServerInfo is not a tuple of >= 2 items")
    state, throughput = v[0], v[1]
    if type(state) is not int or state not in STATES:
        raise ValueError("state %r is not a ServerState" % (state,))
    if type(throughput) is not float or not math.isfinite(throughput) or throughput < 0:
        raise ValueError("throughput %r is not a finite float >= 0" % (throughput,))
    out = {"state": STATES[state], "throughput": throughput}
    extra = v[2] if len(v) > 2 else {}
    if not isinstance(extra, dict):
        raise ValueError("extra info is not a map")
    for k, x in extra.items():
        if k in FIELDS:
            if x is not None and type(x) is not FIELDS[k]:
                raise ValueError("%s = %r is not %s or None" % (k, x, FIELDS[k].__name__))
            if FIELDS[k] is int and x is not None and x < 0:
                raise ValueError("%s = %r is negative" % (k, x))
            out[k] = x
        elif k == "adapters":
            if not isinstance(x, (tuple, list)) or not all(isinstance(a, str) for a in x):
                raise ValueError("adapters is not a sequence of str")
            out[k] = list(x)
        elif k == "next_pings":
            if x is not None and not (isinstance(x, dict) and all(
                    isinstance(p, str) and type(r) is float and r >= 0 for p, r in x.items())):
                raise ValueError("next_pings is not a map of str to float >= 0")
            out[k] = x
    if out.get("start_block") is not None and out.get("end_block") is not None \
            and out["start_block"] >= out["end_block"]:
        raise ValueError("start_block is not below end_block")
    return out


def main(argv):
    peer, expects, hexs = None, [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--peer", "--expect") and i + 1 < len(argv):
            if a == "--peer":
                peer = argv[i + 1]
            else:
                if "=" not in argv[i + 1]:
                    return usage("--expect needs FIELD=VALUE")
                expects.append(argv[i + 1].split("=", 1))
            i += 2
        elif a.startswith("-"):
            return usage("unknown option " + a)
        else:
            hexs.append(a)
            i += 1
    if len(hexs) != 1:
        return usage("one HEX argument")
    try:
        raw = bytes.fromhex(hexs[0].strip())
        v = loads(raw)
        if isinstance(v, tuple) and len(v) == 2 and v[0] == "DictionaryDHTValue":
            body = v[1]
            if not isinstance(body, list) or len(body) != 3:
                raise ValueError("DictionaryDHTValue is not [maxsize, expiration, items]")
            entries = []
            for e in body[2]:
                if not isinstance(e, list) or len(e) != 3 or not isinstance(e[1], bytes):
                    raise ValueError("dictionary entry is not [subkey, bytes, expiration]")
                entries.append((e[0], server_info(loads(e[1])), e[2]))
        else:
            entries = [(None, server_info(v), None)]
    except (ValueError, UnicodeDecodeError) as e:
        print("hm_read: not a Petals server record: %s" % e, file=sys.stderr)
        return 1
    bad = 0
    matched = 0
    for sub, info, exp in entries:
        print(json.dumps({"peer": sub, "expiration": exp, **info}, sort_keys=True))
        if peer is not None and sub != peer:
            continue
        matched += 1
        for field, want in expects:
            got = info.get(field)
            if str(got) != want:
                print("hm_read: %s: %s is %r, expected %s" % (sub, field, got, want),
                      file=sys.stderr)
                bad += 1
    if peer is not None and not matched:
        print("hm_read: no entry for peer %s" % peer, file=sys.stderr)
        return 1
    return 1 if bad else 0


def usage(why):
    print("hm_read: %s\nusage: hm_read.py [--peer PEER] [--expect FIELD=VALUE ...] HEX" % why,
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
