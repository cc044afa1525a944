{
  "targets": [
    {
      "target_name": "mdm_native",
      "sources": [
        "native/addon.cc", "native/gemm.cc", "native/conv.cc", "native/dnnl.cc", "native/group_norm.cc",
        "native/copy_rows.cc", "native/upsample.cc", "native/bias.cc", "native/adam.cc", "native/pool.cc",
        "native/mpi.cc"
      ],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-exceptions", "-fno-trapping-math", "-fno-math-errno"],
      "cflags_cc!": ["-fno-rtti"],
      "libraries": ["-ldl", "-lpthread"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
