"""The definition: the array-API-only implementation that every kernel is held to.

Written against the standard alone, so it runs on every namespace: the row
statistics of softmax, log-softmax and logsumexp (:mod:`.rows`), the reductions
(:mod:`.reductions`), softcap and z-loss (:mod:`.logit_extras`), the chunked
sweeps of ``linear_cross_entropy`` (:mod:`.linear_sweep`, :mod:`.linear_loss`) and
the cache-sized row blocks (:mod:`.blocked`). The property tests hold each kernel
equal to these functions; it imports only the contract.
"""
