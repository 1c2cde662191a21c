using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Dora;

/// <summary>The numeric examples of ../shared/reference/methods_training.md §2 (s = 1), computed by hand there.</summary>
public class DoraReferenceTests
{
    private static (nn.Module<Tensor, Tensor> Holder, PeftModel Peft, TorchSharp.Modules.Linear Lin) Build()
    {
        var lin = nn.Linear(2, 2, hasBias: false);
        using (torch.no_grad())
        {
            lin.weight!.copy_(torch.tensor(new float[] { 3, 0, 4, 5 }, 2, 2));
        }
        var holder = nn.Sequential(("layer", lin));
        var peft = PeftModel.Create(holder, new LoraConfig { Rank = 1, Alpha = 1, UseDora = true, TargetModules = TargetModules.Of("layer") });
        return (holder, peft, lin);
    }

    [Fact]
    public void Magnitude_starts_at_the_row_norms_and_output_equals_base()
    {
        var (holder, peft, _) = Build();
        var m = peft.AdapterStateDict("default")["base_model.model.layer.lora_magnitude_vector"];
        Assert.True(Weights.MaxAbsDiff(m, torch.tensor(new float[] { 3, 6.403124f })) < 1e-5);
        var x = torch.tensor(new float[] { 1, 1, 2, -1 }, 2, 2);
        using var y = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(y, x.matmul(torch.tensor(new float[] { 3, 0, 4, 5 }, 2, 2).t())) < 1e-6);
    }

    private static void SetFactors(PeftModel peft)
    {
        var t = peft.AdapterStateDict("default");
        using var _ = torch.no_grad();
        t["base_model.model.layer.lora_B.weight"].copy_(torch.tensor(new float[] { 1, 0 }, 2, 1));
        t["base_model.model.layer.lora_A.weight"].copy_(torch.tensor(new float[] { 0, 1 }, 1, 2));
    }

    [Fact]
    public void Merged_weight_and_both_forwards_match_the_reference()
    {
        var (holder, peft, lin) = Build();
        SetFactors(peft);
        var x = torch.tensor(new float[] { 1, 1 }, 1, 2);
        using var unmerged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(unmerged, torch.tensor(new float[] { 3.794733f, 9.0f }, 1, 2)) < 1e-5);
        peft.Merge();
        Assert.True(Weights.MaxAbsDiff(lin.weight!, torch.tensor(new float[] { 2.846050f, 0.948683f, 4, 5 }, 2, 2)) < 1e-5);
        using var merged = holder.call(x);
        Assert.True(Weights.MaxAbsDiff(merged, torch.tensor(new float[] { 3.794733f, 9.0f }, 1, 2)) < 1e-5);
        peft.Unmerge();
        Assert.True(Weights.MaxAbsDiff(lin.weight!, torch.tensor(new float[] { 3, 0, 4, 5 }, 2, 2)) < 1e-6);
    }

    [Fact]
    public void Weight_norm_is_detached_in_backprop_as_the_paper_and_peft_do()
    {
        var (holder, peft, _) = Build();
        SetFactors(peft);
        var x = torch.tensor(new float[] { 1, 1 }, 1, 2);
        holder.call(x).sum().backward();
        var t = peft.AdapterStateDict("default");
        Assert.True(Weights.MaxAbsDiff(t["base_model.model.layer.lora_magnitude_vector"].grad!, torch.tensor(new float[] { 1.264911f, 1.405564f })) < 1e-5);
        // With the detach trick ∂L/∂B = [[0.948683],[1.0]]; without it [[0.569210],[−0.097561]].
        Assert.True(Weights.MaxAbsDiff(t["base_model.model.layer.lora_B.weight"].grad!, torch.tensor(new float[] { 0.948683f, 1.0f }, 2, 1)) < 1e-5);
    }

    [Fact]
    public void Dropout_in_training_feeds_the_same_dropped_input_to_both_terms()
    {
        torch.manual_seed(51);
        var lin = nn.Linear(8, 8);
        var holder = nn.Sequential(("layer", lin));
        var peft = PeftModel.Create(holder, new LoraConfig { Rank = 2, Alpha = 2, UseDora = true, Dropout = 0.5, TargetModules = TargetModules.Of("layer") });
        holder.train();
        var x = torch.randn(4, 8);
        // At init (B = 0, m = ‖W‖) the DoRA term is (m/n − 1)·W·drop(x) = 0, so the output is the base output even with dropout.
        using var y = holder.call(x);
        using var expected = lin.call(x);
        Assert.True(Weights.MaxAbsDiff(y, expected) < 1e-5);
        Assert.NotNull(peft);
    }
}
