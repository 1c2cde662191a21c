using PeftSharp.Core;
using PeftSharp.Merging;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Merging;

public class MergingLeakTests
{
    [Fact]
    public void Hundred_merges_of_every_kind_leak_no_tensors()
    {
        torch.manual_seed(12);
        var config = new LoraConfig { Rank = 2, Alpha = 4, InitLoraWeights = InitLoraWeights.Random, TargetModules = TargetModules.Of("q_proj", "v_proj") };
        var peft = PeftModel.Create(new NestedNet(), config, "a");
        peft.AddAdapter("b", config with { Alpha = 2 });
        var kinds = Enum.GetValues<CombinationType>();
        long? live = null;
        for (var step = 0; step < 100; step++)
        {
            using (var combined = step % 12 == 11
                ? LoraLego.Combine(peft, ["a", "b"], [0.6, 0.4], new LegoOptions { Clusters = 3, Seed = step })
                : AdapterMerging.Combine(peft, ["a", "b"], [0.6, 0.4], new CombinationOptions { Type = kinds[step % 12 % kinds.Length], Density = 0.5, Seed = step }))
            {
                using var delta = combined.DeltaWeight(combined.Factors.Keys.First());
            }
            if (step == 2)
            {
                live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            }
        }
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
