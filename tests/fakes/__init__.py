"""In-memory fakes of the seams the project's adapters talk through, one per seam, shared by
the tests: `kube_api.FakeKube` stands for the Kubernetes API server (with `kube_objects`, what
the server does to objects as JSON); `test_kube_api.py` checks the fake against what the real
server does.

A fake here must behave like the real thing where the code under test can tell (errors
shaped as the client raises them, paging, selectors, resourceVersions), so that a test using
it fails when the code under test is wrong. A fake never imports the adapter it stands in
for (only the client library's models and `autoscaler.clock`).
"""
