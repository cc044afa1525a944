// 2-D convolutions in NHWC with HWIO filters, as patch extraction (im2col) + one matrix product
// per chunk of output pixels. The filter viewed as [kh·kw·Cin, Cout] is already the right matrix.
#pragma once

namespace mdm {

struct ConvGeometry {
  int batch, inH, inW, inC;
  int kh, kw, outC;
  int strideH, strideW, dilationH, dilationW;
  int padTop, padLeft;
  int outH, outW;
};

void conv2d(const float* x, const float* w, float* y, const ConvGeometry& g);
void conv2dBackpropInput(const float* dy, const float* w, float* dx, const ConvGeometry& g);
void conv2dBackpropFilter(const float* x, const float* dy, float* dw, const ConvGeometry& g);

}  // namespace mdm
