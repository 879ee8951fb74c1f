"""The local Ray cluster: its keeper starts its own cluster whatever RAY_ADDRESS says."""

from __future__ import annotations

import os

from nas.search.cluster import LOCAL_ENV, QUIET_ENV, LocalCluster


def test_a_stale_ray_address_does_not_redirect_the_local_cluster():
    # Ray leaves RAY_ADDRESS set in a process that joined a cluster; a user may have one set
    env = dict(os.environ, **QUIET_ENV, **LOCAL_ENV, RAY_ADDRESS="192.0.2.2:42569")
    cluster = LocalCluster(env)
    try:
        assert cluster.address.startswith("127.0.0.1:")
    finally:
        cluster.stop()
