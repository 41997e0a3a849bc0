"""HTTP/1.1 pieces shared by the API server's node proxy, the node agent's streaming server and the Podman client.

The connection upgrade behind exec, attach and port-forward (`upgrade`) and the one parser of a raw HTTP/1.1
response head (`http1`) live here, so the API server never imports node-agent code to relay a stream.
"""
