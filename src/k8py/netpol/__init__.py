"""NetworkPolicy enforcement on a node: model.py (the semantics, pure), rules.py (the nftables
ruleset and its diffs, pure), controller.py (informers and the sync loop); nft runs through k8py.nftables, shared with the service proxy.
See docs/network-policy.md."""
