# Generates tests/unit/net/peer/vectors_gen.h: keys and signatures made by pyca/cryptography
# (OpenSSL), an implementation independent of mbedTLS/libsodium, for cross-checks.
from cryptography.hazmat.primitives.asymmetric import rsa, ec, padding, utils
from cryptography.hazmat.primitives import hashes, serialization
import re, sys

# usage: gen_vectors.py <libp2p/specs checkout>/peer-ids/peer-ids.md > vectors_gen.h
_spec = open(sys.argv[1]).read()
RSA_PRIV = re.search(r'\| rsa private key \| ([0-9a-fA-F]+)', _spec).group(1)
RSA_PUB = re.search(r'\| rsa public key \| ([0-9a-fA-F]+)', _spec).group(1)

def h(b): return b.hex()
def pb(t, data):
    def uv(n):
        o=b''
        while n>=0x80: o+=bytes([n&0x7f|0x80]); n>>=7
        return o+bytes([n])
    return bytes([0x08,t,0x12])+uv(len(data))+data

out=[]
def define(name, b):
    s=h(b)
    parts=[s[i:i+96] for i in range(0,len(s),96)]
    out.append('#define %s \\\n\t"%s"\n' % (name, '" \\\n\t"'.join(parts)))

msg=b"kwaainet-edge cross-check message"
out.append('#define XMSG "%s"\n' % msg.decode())
for bits,name in ((2048,'RSA2048'),(1024,'RSA1024')):
    k=rsa.generate_private_key(65537,bits)
    der=k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    pubder=k.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    define(name+'_PRIV_PB', pb(0,der))
    define(name+'_PUB_PB', pb(0,pubder))
    if bits==2048:
        define(name+'_SIG', k.sign(msg, padding.PKCS1v15(), hashes.SHA256()))
        p8=k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        define(name+'_PKCS8_PRIV_PB', pb(0,p8))
# secp256k1: a signature in both S halves
N=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
def der(r,s):
    def i(x):
        b=x.to_bytes((x.bit_length()+7)//8,'big')
        if b[0]&0x80: b=b'\0'+b
        return b'\x02'+bytes([len(b)])+b
    body=i(r)+i(s)
    return b'\x30'+bytes([len(body)])+body
k=ec.generate_private_key(ec.SECP256K1())
d=k.private_numbers().private_value.to_bytes(32,'big')
comp=k.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
define('SECPX_PRIV_PB', pb(2,d)); define('SECPX_PUB_PB', pb(2,comp))
sig=k.sign(msg, ec.ECDSA(hashes.SHA256()))
r,s=utils.decode_dss_signature(sig)
lo=min(s,N-s); hi=max(s,N-s)
define('SECPX_SIG_LOW', der(r,lo)); define('SECPX_SIG_HIGH', der(r,hi))
# P-256
N2=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
k=ec.generate_private_key(ec.SECP256R1())
sec1=k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
spki=k.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
define('P256X_PRIV_PB', pb(3,sec1)); define('P256X_PUB_PB', pb(3,spki))
sig=k.sign(msg, ec.ECDSA(hashes.SHA256()))
r,s=utils.decode_dss_signature(sig)
define('P256X_SIG_HIGH', der(r,max(s,N2-s)))
define('P256X_SIG_LOW', der(r,min(s,N2-s)))
# RSA 4096 spec vector
define('RSA4096_PRIV_PB', bytes.fromhex(RSA_PRIV))
define('RSA4096_PUB_PB', bytes.fromhex(RSA_PUB))
sys.stdout.write('/* Generated once by tests/unit/net/peer/gen_vectors.py (pyca/cryptography, i.e. OpenSSL:\n * an implementation independent of mbedTLS) plus the RSA-4096 test key of libp2p/specs\n * peer-ids/peer-ids.md. Hex protobufs (libp2p PublicKey/PrivateKey) and DER signatures over\n * XMSG. Do not edit; rerun the script to replace. */\n#ifndef KW_TEST_PEER_VECTORS_GEN_H\n#define KW_TEST_PEER_VECTORS_GEN_H\n\n' + '\n'.join(out) + '\n#endif\n')
