"""Tool modules; each has `register(server)`, and `server.app.TOOLSETS` lists them."""
