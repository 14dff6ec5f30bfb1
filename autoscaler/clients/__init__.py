"""The cloud and cluster clients every adapter shares: `aws` (boto3 clients, AWS error
codes, ownership tags, throttling), `kube` (connecting, ownership labels, typed API errors),
`kube_informer` and `kube_snapshot` (watch-fed copies of listed objects).

They live below the signal sources, the providers, the kube plug-ins and the node
provisioner so those never import each other. This package must never import an adapter,
the controller, the planner or the process loop.
"""
