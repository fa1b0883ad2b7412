"""NetworkPolicy enforcement on a node: model.py (the semantics, pure), rules.py (the nftables
ruleset and its diffs, pure), controller.py (informers and the sync loop), nft.py (running nft).
See docs/network-policy.md."""
