using TorchSharp;

namespace PeftSharp.Tests;

public class TorchLoadsTests
{
    [Fact]
    public void Torch_initialises_and_autograd_works()
    {
        using var a = torch.tensor(new float[] { 1, 2, 3, 4 }, 2, 2).requires_grad_();
        using var loss = a.matmul(a).sum();
        loss.backward();
        // d/dA sum(A·A) = 1·Aᵀ + Aᵀ·1 -> [[1+2+1+3, 3+4+1+3]...]; check one entry by hand: [[4+3, 3+7],[4+6? ]] computed below
        var g = a.grad!.data<float>().ToArray();
        Assert.Equal(new float[] { 7, 11, 9, 13 }, g);
    }
}
