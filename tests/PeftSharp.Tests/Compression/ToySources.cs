using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Compression;

/// <summary>
/// Trained-looking adapters of any method on <see cref="NestedNet"/> for the compression tests: every trainable tensor
/// perturbed by seeded noise, saved as a PEFT folder, with the base weights it was made on.
/// </summary>
public sealed class ToySources : IDisposable
{
    public string Root { get; } = Directory.CreateTempSubdirectory("peftsharp-compress-").FullName;

    public void Dispose() => Directory.Delete(Root, true);

    /// <summary>A source adapter; <paramref name="std"/> is added noise (0.5 · randn by default).</summary>
    public (Dictionary<string, Tensor> BaseState, PeftModel Peft, string Folder) Save(AdapterConfig config, string name = "source", int seed = 1, double std = 0.5)
    {
        torch.manual_seed(seed);
        var net = new NestedNet();
        net.eval();
        var baseState = net.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var peft = PeftModel.Create(net, config);
        using (torch.no_grad())
        {
            foreach (var p in peft.TrainableParameters())
            {
                p.add_(torch.randn_like(p) * std);
            }
        }
        var folder = Path.Combine(Root, name);
        PeftAdapterFiles.Save(peft, folder);
        return (baseState, peft, folder);
    }

    /// <summary>A new NestedNet holding <paramref name="baseState"/>, in eval mode.</summary>
    public static NestedNet Fresh(Dictionary<string, Tensor> baseState)
    {
        var fresh = new NestedNet();
        fresh.load_state_dict(baseState);
        fresh.eval();
        return fresh;
    }

    /// <summary>The adapter <paramref name="folder"/> loaded on a fresh base.</summary>
    public static PeftModel Load(Dictionary<string, Tensor> baseState, string folder) => PeftAdapterFiles.FromPretrained(Fresh(baseState), folder);

    /// <summary>Every weight and bias of the model after merging its adapters, by parameter name of the plain model.</summary>
    public static Dictionary<string, Tensor> MergedParameters(PeftModel peft) =>
        peft.MergeAndUnload().named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
}
