"""Dev tool: generate src/k8py/api/protobuf_tags.py from kubectl's Go struct tags (structs.json)."""
import json
import re
import sys

sys.path.insert(0, '/work/main/src')
from k8py.api.registry import BUILTIN_KINDS

d = json.load(open('/tmp/pbx/structs.json'))
SPECIAL = {
    'k8s.io/apimachinery/pkg/api/resource.Quantity': 'Quantity',
    'k8s.io/apimachinery/pkg/apis/meta/v1.Time': 'Time',
    'k8s.io/apimachinery/pkg/apis/meta/v1.MicroTime': 'MicroTime',
    'k8s.io/apimachinery/pkg/apis/meta/v1.Duration': 'Duration',
    'k8s.io/apimachinery/pkg/apis/meta/v1.FieldsV1': 'FieldsV1',
    'k8s.io/apimachinery/pkg/util/intstr.IntOrString': 'IntOrString',
    'k8s.io/apimachinery/pkg/runtime.RawExtension': 'RawExtension',
}
def short(full):
    if full in SPECIAL: return SPECIAL[full]
    p, n = full.rsplit('.', 1)
    if p.startswith('k8s.io/api/'): return p[len('k8s.io/api/'):] + '.' + n
    if p == 'k8s.io/apimachinery/pkg/apis/meta/v1': return 'meta/v1.' + n
    raise ValueError(full)
def full_of(t):
    return t['pkg'] + '.' + t['named'].split('.')[-1]
INTS = {'int', 'int32', 'int64', 'int8', 'int16'}
def typ(t, deps):
    """Go type ref -> (code, pointer)"""
    if isinstance(t, str):
        if t == 'string': return 's'
        if t in INTS: return 'i'
        if t == 'bool': return 'b'
        if t in ('float64', 'float32'): raise ValueError('float')
        raise ValueError(t)
    if 'ptr' in t:
        return '*' + typ(t['ptr'], deps)
    if 'slice' in t:
        e = t['slice']
        if e == 'uint8' or (isinstance(e, dict) and e.get('named') == 'uint8'): return 'y'
        inner = typ(e, deps)
        assert not inner.startswith('[') and not inner.startswith('*'), (t, inner)
        return '[]' + inner
    if 'map' in t:
        k, v = t['map']
        assert typ(k, deps) == 's', t
        inner = typ(v, deps)
        assert not inner.startswith('*') and not inner.startswith('{'), inner
        return '{' + inner + '}'
    if 'named' in t:
        if t['kind'] == 'struct':
            f = full_of(t)
            if f not in SPECIAL: deps.append(f)
            return short(f)
        return typ(t['under'], deps)
    raise ValueError(t)
def fields(full, deps):
    out = []
    for f in d[full]:
        m = re.search(r'protobuf:"([^"]*)"', f['tag'])
        if not m or m.group(1) == '-': continue
        pb = m.group(1).split(',')
        num = int(pb[1])
        j = re.search(r'json:"([^"]*)"', f['tag'])
        jparts = j.group(1).split(',') if j else ['']
        jname = jparts[0]
        if jname == '-': continue
        inline = f['embedded'] and jname == ''
        assert jname or inline, (full, f)
        code = typ(f['type'], deps)
        flags = ''
        if code.startswith('*'): code = code[1:]; flags += '*'
        if 'omitempty' in jparts[1:]: flags += 'e'
        if 'omitzero' in jparts[1:]: flags += 'z'
        if inline: flags += '-'
        wire = pb[0]
        exp = 'varint' if code in ('i', 'b') or code == '[]i' or code == '[]b' else 'bytes'
        if wire != exp: print("WIRE MISMATCH", full, f["tag"], code, file=sys.stderr)
        out.append(f"{num}:{jname}:{code}" + (':' + flags if flags else ''))
    return out
def pkg_of(group, version):
    g = group.split('.')[0] if group else 'core'
    return f'k8s.io/api/{g}/{version}'
roots = [pkg_of(k.group, k.version) + '.' + k.kind for k in BUILTIN_KINDS]
roots += ['k8s.io/api/autoscaling/v1.Scale', 'k8s.io/api/policy/v1.Eviction',
          'k8s.io/apimachinery/pkg/apis/meta/v1.DeleteOptions',
          'k8s.io/api/authentication/v1.TokenRequest', 'k8s.io/api/authentication/v1.TokenReview',
          'k8s.io/api/authentication/v1.SelfSubjectReview',
          'k8s.io/api/authorization/v1.SelfSubjectAccessReview', 'k8s.io/api/authorization/v1.SubjectAccessReview',
          'k8s.io/api/authorization/v1.LocalSubjectAccessReview', 'k8s.io/api/authorization/v1.SelfSubjectRulesReview']
table = {}
todo = list(roots)
while todo:
    r = todo.pop()
    if short(r) in table: continue
    deps = []
    table[short(r)] = fields(r, deps)
    todo += deps
def order(k):
    return k
lines = []
for k in sorted(table):
    lines.append(f'    "{k}": "{" ".join(table[k])}",')
print(len(table), sum(len(v) for v in table.values()), file=sys.stderr)
open('/tmp/pbx/table.txt', 'w').write('\n'.join(lines) + '\n')

# ---- emit src/k8py/api/protobuf_tags.py ----
import textwrap


def rel(msg, tok):
    num, jname, code, *rest = tok.split(':')
    pkg = msg.rsplit('.', 1)[0] + '.'
    base = code.lstrip('[]{').rstrip('}')
    if base.startswith(pkg):
        code = code.replace(pkg, '')
    return ':'.join([num, jname, code, *rest])
HEADER = open('/tmp/pbx/header.py').read()
out = [HEADER, 'MESSAGES: dict[str, str] = {']
for k in sorted(table):
    toks = [rel(k, t) for t in table[k]]
    s = ' '.join(toks)
    one = f'    "{k}": "{s}",'
    if len(one) <= 110:
        out.append(one)
    else:
        out.append(f'    "{k}": (')
        chunks = textwrap.wrap(s, 100 - 10, break_long_words=False, break_on_hyphens=False)
        for i, c in enumerate(chunks):
            sep = ' ' if i < len(chunks) - 1 else ''
            out.append(f'        "{c}{sep}"')
        out.append('    ),')
out.append('}')
open('/work/main/src/k8py/api/protobuf_tags.py', 'w').write('\n'.join(out) + '\n')
