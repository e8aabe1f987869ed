"""The gateway's HTTP server below the app: what uvicorn is run with.

settings    GATEWAY_SERVER__*: header, idle and unread-body deadlines, header size,
            connection limit
protocol    uvicorn's httptools protocol applying them to every connection
            (``uvicorn --http gateway.server.protocol:GatewayHttpProtocol``)
"""
