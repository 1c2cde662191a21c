using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Core.Serving;

[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public class ServingLeakTests
{
    [Fact]
    public void Hundred_routed_forwards_and_hot_swaps_leak_no_tensors()
    {
        torch.manual_seed(13);
        var config = new LoraConfig { Rank = 2, Alpha = 4, InitLoraWeights = InitLoraWeights.Random, TargetModules = TargetModules.Of("q_proj", "v_proj"), ModulesToSave = ["lm_head"] };
        var net = new NestedNet();
        var peft = PeftModel.Create(net, config, "a");
        peft.AddAdapter("b", config);
        peft.PrepareForHotSwap(3);
        net.eval();
        var swapIn = peft.AdapterStateDict("b").ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        using var x = torch.randn(4, 4);
        string[][] routings = [["a", "b", "a", "b"], ["b", "b", AdapterRouting.BaseName, "a"], ["a", "a", "a", "a"]];
        long? live = null;
        for (var step = 0; step < 100; step++)
        {
            using (torch.no_grad())
            using (peft.UseAdapterPerRow(routings[step % routings.Length]))
            {
                using var y = net.call(x);
            }
            peft.HotSwapAdapter("a", config, swapIn);
            if (step == 2)
            {
                live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            }
        }
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        // The mixed routings ran LoRA's batched path (per-row factors, cached per-row scales), so it is the one checked.
        Assert.All(peft.AdapterLayers(), l => Assert.True(l.Layer.BatchedRoutedForwards > 0, l.Name));
    }
}
