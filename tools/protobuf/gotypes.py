"""Dev tool: read Go reflect type data (struct tags) out of the kubectl binary."""
import struct

B = '/root/.pyenv/versions/3.11.7/bin/kubectl'
data = open(B, 'rb').read()
# sections: vaddr, off, size
SECS = []
shoff = struct.unpack_from('<Q', data, 0x28)[0]
shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3a)
for i in range(shnum):
    name, typ, flags, addr, off, size = struct.unpack_from('<IIQQQQ', data, shoff + i * shentsize)
    SECS.append((addr, off, size))
def v2o(a):
    for addr, off, size in SECS:
        if addr and addr <= a < addr + size:
            return a - addr + off
    raise KeyError(hex(a))
RODATA = 0x1e89000
TYPELINK = (0x3def600, 0x16cc8)
def u8(a): return data[v2o(a)]
def u32(a): return struct.unpack_from('<I', data, v2o(a))[0]
def i32(a): return struct.unpack_from('<i', data, v2o(a))[0]
def u64(a): return struct.unpack_from('<Q', data, v2o(a))[0]
def varint(a):
    x = s = 0
    while True:
        b = u8(a); a += 1
        x |= (b & 0x7f) << s; s += 7
        if b < 0x80: return x, a
def readname(a):
    flags = u8(a)
    n, p = varint(a + 1)
    name = data[v2o(p):v2o(p) + n].decode()
    p += n
    tag = ''
    if flags & 2:
        tn, q = varint(p)
        tag = data[v2o(q):v2o(q) + tn].decode()
    return name, tag, flags
TYPES = RODATA
def tname(t):
    tflag = u8(t + 20)
    off = i32(t + 40)
    n, _, _ = readname(TYPES + off)
    if tflag & 2: n = n[1:]
    return n
def kind(t): return u8(t + 23) & 0x1f
def uncommon_off(t):
    k = kind(t)
    extra = {22: 8, 23: 8, 17: 24, 25: 8 + 24, 21: None, 18: 16, 19: 8, 20: 8 + 24}.get(k, 0)
    return extra
def pkgpath(t):
    tflag = u8(t + 20)
    if not tflag & 1: return ''
    k = kind(t)
    if k == 21:
        return None  # map layout uncertain
    if k == 19:
        return None
    ext = uncommon_off(t)
    uc = t + 48 + ext
    po = i32(uc)
    if po == 0: return ''
    return readname(TYPES + po)[0]
if __name__ == '__main__':
    n = TYPELINK[1] // 4
    cnt = 0
    for i in range(n):
        off = i32(TYPELINK[0] + 4 * i)
        t = TYPES + off
        try:
            nm = tname(t)
        except Exception as e:
            nm = 'ERR ' + str(e)
        if i < 20 or 'PodSpec' in nm:
            print(hex(t), kind(t), nm)

def struct_fields(t):
    fp = u64(t + 56); fl = u64(t + 64)
    out = []
    for j in range(fl):
        f = fp + 24 * j
        name, tag, flags = readname(u64(f))
        out.append((name, tag, bool(flags & 8), u64(f + 8)))
    return out

def children(t):
    k = kind(t)
    out = []
    pt = i32(t + 44)
    if pt: out.append(TYPES + pt)
    if k in (22, 23, 17, 18):
        out.append(u64(t + 48))
    elif k == 21:
        out += [u64(t + 48), u64(t + 56)]
    elif k == 25:
        out += [f[3] for f in struct_fields(t)]
    elif k == 19:
        inc, outc = struct.unpack_from('<HH', data, v2o(t + 48))
        outc &= 0x7fff
        p = t + 56 + (16 if u8(t + 20) & 1 else 0)
        out += [u64(p + 8 * i) for i in range(inc + outc)]
    return [x for x in out if x]

def all_types():
    seen = set()
    stack = [TYPES + i32(TYPELINK[0] + 4 * i) for i in range(TYPELINK[1] // 4)]
    while stack:
        t = stack.pop()
        if t in seen: continue
        seen.add(t)
        try:
            stack += children(t)
        except Exception:
            pass
    return seen

def struct_pkgpath(t):
    # struct: pkgPath Name pointer at t+48 (for named structs same as uncommon pkgpath)
    p = u64(t + 48)
    return readname(p)[0] if p else ''
