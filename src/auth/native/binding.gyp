{
  "targets": [
    {
      "target_name": "pbkdf2",
      "sources": ["pbkdf2.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-deprecated-declarations"]
    }
  ]
}
