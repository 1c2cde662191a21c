using PeftSharp.Compression;
using PeftSharp.Core;
using PeftSharp.Methods.LoHa;
using PeftSharp.Methods.Lora;
using TorchSharp;

namespace PeftSharp.Tests.Compression;

public sealed class CompressionLeakTests : IDisposable
{
    private readonly ToySources _sources = new();

    public void Dispose() => _sources.Dispose();

    [Fact]
    public void Hundred_compressions_by_either_route_leak_no_tensors()
    {
        var targets = TargetModules.Of("q_proj", "v_proj", "proj");
        var (_, _, lora) = _sources.Save(new LoraConfig { Rank = 3, TargetModules = targets }, "lora");
        var (baseState, _, loha) = _sources.Save(new LoHaConfig { Rank = 2, TargetModules = targets, ModulesToSave = ["lm_head"] }, "loha");
        var model = ToySources.Fresh(baseState);
        long? live = null;
        for (var step = 0; step < 100; step++)
        {
            var options = step % 2 == 0 ? new CompressionOptions { Rank = 2 } : new CompressionOptions { Budget = 60 };
            using (var compressed = step % 3 == 0 ? LoraCompression.CompressFolder(lora, options) : LoraCompression.CompressFolder(loha, options, model))
            {
                Assert.NotEmpty(compressed.Tensors);
            }
            if (step == 2)
            {
                live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            }
        }
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
