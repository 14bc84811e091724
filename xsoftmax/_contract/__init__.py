"""The contract: argument checks, targets, dtypes and namespaces (the lowest layer).

Everything a public function promises about its arguments lives here: the
``TypeError``/``ValueError`` of each bad input (:mod:`.checks`), the namespace and
device of the arrays (:mod:`.namespaces`), the compute and accumulation dtypes
(:mod:`.dtypes`, :mod:`.prepare`), the class-index targets (:mod:`.targets`) and
the validated problems of the losses (:mod:`.loss_problem`, :mod:`.linear_problem`).
It imports nothing else from the package.
"""
