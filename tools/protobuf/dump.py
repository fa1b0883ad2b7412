import sys, json; sys.path.insert(0,'/tmp/pbx')
from gotypes import *

ts = all_types()
KN = {1:'bool',2:'int',3:'int8',4:'int16',5:'int32',6:'int64',7:'uint',8:'uint8',9:'uint16',10:'uint32',11:'uint64',13:'float32',14:'float64',24:'string',25:'struct',21:'map',22:'ptr',23:'slice',17:'array',20:'iface'}
def tref(t):
    k = kind(t)
    named = u8(t+20) & 4
    if named:
        return {'named': tname(t), 'pkg': pkgpath(t) if k not in (21,19) else '?', 'kind': KN.get(k,k),
                'under': tref_under(t)}
    return tref_under(t)
def tref_under(t):
    k = kind(t)
    if k in (22, 23, 17): return {KN[k]: tref(u64(t+48))}
    if k == 21: return {'map': [tref(u64(t+48)), tref(u64(t+56))]}
    if k == 25: return 'struct'
    return KN.get(k, k)
out = {}
for t in ts:
    if kind(t) == 25 and u8(t+20) & 4:
        pp = pkgpath(t)
        if pp.startswith('k8s.io/api/') or pp.startswith('k8s.io/apimachinery/pkg/apis/meta/v1') or pp in ('k8s.io/apimachinery/pkg/runtime','k8s.io/apimachinery/pkg/util/intstr','k8s.io/apimachinery/pkg/api/resource'):
            out[pp + '.' + tname(t).split('.')[-1]] = [
                {'name': n, 'tag': tag, 'embedded': emb, 'type': tref(ft)} for n, tag, emb, ft in struct_fields(t)]
json.dump(out, open('/tmp/pbx/structs.json','w'), indent=1)
print(len(out))
